package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
)

// Table rewrites a derived table (one record per key under a prefix) in
// place, so that a re-run that derives the same records writes nothing:
// Put stores a record only when it differs from the stored one, and Finish
// deletes every key of the table that this run did not Put, then reclaims
// the space the changes freed. It replaces "drop the table and write it
// again", which left a dead copy of every record in the value log on each
// run.
//
// Put is safe for concurrent use. Memory: 8 bytes per key Put (a 64-bit hash
// of the key, so that Finish knows which keys to keep) until Finish. A stale
// key whose hash equals a kept key's is kept: with n keys that happens with
// probability about n²/2⁶⁵ (3·10⁻⁷ at 6M keys).
type Table struct {
	st     *Store
	prefix string

	mu      sync.Mutex
	batch   *Batch
	pending []tableRecord // Put but not yet compared with the store
	seen    []uint64
	written int64
	same    int64
	deleted int64
}

// Table starts the rewrite of the derived table under prefix.
func (s *Store) Table(prefix string) *Table {
	return &Table{st: s, prefix: prefix, batch: s.NewBatch()}
}

type tableRecord struct {
	key string
	val []byte
}

// tableCompareBatch is how many records Put collects before comparing them
// with the stored ones in one read transaction (one transaction per record
// would wait for every write in flight, each time).
const tableCompareBatch = 1024

// Put records key (without the prefix) as produced by this run with value
// val (which Put keeps: do not reuse it), writing it only if the stored value
// differs.
func (t *Table) Put(key string, val []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen = append(t.seen, Hash64(key))
	t.pending = append(t.pending, tableRecord{key, val})
	if len(t.pending) < tableCompareBatch {
		return nil
	}
	return t.comparePending()
}

// comparePending writes the pending records that differ from the stored
// ones. t.mu is held.
func (t *Table) comparePending() error {
	if len(t.pending) == 0 {
		return nil
	}
	slices.SortFunc(t.pending, func(a, b tableRecord) int { return strings.Compare(a.key, b.key) })
	var changed []tableRecord
	err := t.st.db.View(func(txn *badger.Txn) error {
		for _, r := range t.pending {
			item, err := txn.Get([]byte(t.prefix + r.key))
			if errors.Is(err, badger.ErrKeyNotFound) {
				changed = append(changed, r)
				continue
			}
			if err != nil {
				return err
			}
			same := false
			if item.ValueSize() == int64(len(r.val)) {
				if err := item.Value(func(old []byte) error { same = bytes.Equal(old, r.val); return nil }); err != nil {
					return err
				}
			}
			if !same {
				changed = append(changed, r)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store table %q: %w", t.prefix, err)
	}
	t.same += int64(len(t.pending) - len(changed))
	t.written += int64(len(changed))
	clear(t.pending)
	t.pending = t.pending[:0]
	for _, r := range changed {
		if err := t.batch.Put(t.prefix+r.key, r.val); err != nil {
			return err
		}
	}
	return nil
}

// PutJSON is Put of v encoded as JSON (deterministic for structs and maps).
func (t *Table) PutJSON(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store encode %q: %w", t.prefix+key, err)
	}
	return t.Put(key, b)
}

// Finish commits the writes, deletes the keys of the table that were not
// Put, and runs value-log garbage collection if anything changed. After an
// error or a cancelled ctx the table may hold both old and new records: the
// next run's Finish removes the old ones.
func (t *Table) Finish(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.comparePending(); err != nil {
		return err
	}
	if err := t.batch.Flush(); err != nil {
		return err
	}
	slices.Sort(t.seen)
	del := t.st.NewBatch()
	defer del.Cancel()
	err := t.st.Scan(t.prefix, func(k string, _ []byte) error {
		if _, found := slices.BinarySearch(t.seen, Hash64(k)); found {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		t.deleted++
		return del.Delete(t.prefix + k)
	})
	if err != nil {
		return err
	}
	if err := del.Flush(); err != nil {
		return err
	}
	t.seen = nil
	if t.written > 0 || t.deleted > 0 {
		return t.st.ReclaimSpace()
	}
	return nil
}

// Cancel drops the writes not yet committed.
func (t *Table) Cancel() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending = nil
	t.batch.Cancel()
}

// Changes reports how many records Put wrote, found unchanged, and Finish
// deleted.
func (t *Table) Changes() (written, unchanged, deleted int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.written, t.same, t.deleted
}

// ReclaimSpace runs Badger's value-log garbage collection until it finds no
// value-log file at least half of which is dead (overwritten or deleted
// values). Badger never does this by itself.
func (s *Store) ReclaimSpace() error {
	for i := 0; i < 1000; i++ {
		err := s.db.RunValueLogGC(0.5)
		switch err {
		case nil:
			continue
		case badger.ErrNoRewrite, badger.ErrRejected:
			return nil
		default:
			return fmt.Errorf("store %s: value log gc: %w", s.path, err)
		}
	}
	return nil
}

// StoreSize is what a store takes on disk and how much of it is live data.
type StoreSize struct {
	DiskBytes int64 `json:"disk_bytes"` // blocks allocated to the files of the store directory
	LiveBytes int64 `json:"live_bytes"` // keys and values of the current records, uncompressed
	Keys      int64 `json:"keys"`
}

// Size measures the store: the files on disk, and the live keys and values
// (read from the keys alone; no value is loaded).
func (s *Store) Size() (StoreSize, error) {
	var sz StoreSize
	err := filepath.WalkDir(s.path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		sz.DiskBytes += diskBytes(info)
		return nil
	})
	if err != nil {
		return sz, fmt.Errorf("store %s: size: %w", s.path, err)
	}
	err = s.scanKeys("", func(item *badger.Item) error {
		sz.Keys++
		sz.LiveBytes += int64(len(item.Key())) + item.ValueSize()
		return nil
	})
	if err != nil {
		return sz, fmt.Errorf("store %s: size: %w", s.path, err)
	}
	return sz, nil
}
