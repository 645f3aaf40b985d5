// Package pipeline owns what every stage shares: the Badger store, fingerprints,
// the stage contract, the driver that runs stages in order, progress reporting
// and the manifest.
package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Key prefixes. Cached work (paid for: LLM answers, hit lists, teacher scores)
// lives under fingerprints and is never deleted by a run; derived tables (one
// record per query) are derived by each run from cached work and rewritten in
// place (see Table).
const (
	PrefixDoc   = "doc/"   // passage id -> Passage
	PrefixLLM   = "llm/"   // request fingerprint -> LLM answer (cached work)
	PrefixHits  = "hits/"  // retrieval fingerprint -> hit list (cached work)
	PrefixScore = "score/" // teacher fingerprint -> per-passage scores (cached work)
	PrefixVec   = "vec/"   // embedding fingerprint (model, text with prefix) -> unit float32 vector, little-endian (cached work)
	PrefixQuery = "q/"     // qid -> query record (derived)
	PrefixMined = "m/"     // qid -> candidate list (derived)
	PrefixLabel = "l/"     // qid -> labelled list (derived)
	PrefixFail  = "fail/"  // stage/item -> failure reason (derived)
	PrefixStat  = "stat/"  // stage -> counts (derived)
	PrefixMeta  = "meta/"  // run facts: corpus fingerprint, config
)

// Store is the Badger database every stage reads from and writes to. It is
// safe for concurrent use. One process may hold a store at a time.
type Store struct {
	db       *badger.DB
	path     string
	readOnly bool
}

// ErrStoreLocked is returned by OpenStore when another process holds the store.
var ErrStoreLocked = errors.New("store is in use: another synthq process holds it")

// OpenStore opens (creating if needed) the store at dir. If another process
// holds the directory, the error wraps ErrStoreLocked and names the directory.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	opts := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithNumVersionsToKeep(1).
		WithCompactL0OnClose(true).
		WithValueThreshold(1 << 10).
		WithValueLogFileSize(valueLogFileSize).
		WithBlockCacheSize(64 << 20)
	// After a killed process is reaped, the kernel can hold its directory lock
	// for some milliseconds more; a live synthq holds it for good. Retrying for
	// up to a second tells the two apart without making the second wait long.
	var db *badger.DB
	var err error
	for deadline := time.Now().Add(lockWait); ; time.Sleep(25 * time.Millisecond) {
		db, err = badger.Open(opts)
		if err == nil || !isLockError(err) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		if isLockError(err) {
			return nil, fmt.Errorf("open store %s: %w", dir, ErrStoreLocked)
		}
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return &Store{db: db, path: dir}, nil
}

// OpenStoreReadOnly opens the store at dir for reading only, as many
// processes at once may (a prepared corpus on a shared volume or NFS read by
// every shard of a job): it takes no lock, writes nothing (not even at
// Close) and fails if dir holds no store. The store must have been closed
// cleanly by the process that wrote it (synthq prepare does). Writes to it
// fail.
func OpenStoreReadOnly(dir string) (*Store, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	opts := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithReadOnly(true).
		WithBypassLockGuard(true).
		WithCompactL0OnClose(false).
		WithValueThreshold(1 << 10).
		WithValueLogFileSize(valueLogFileSize).
		WithBlockCacheSize(64 << 20)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open store %s read-only: %w", dir, err)
	}
	return &Store{db: db, path: dir, readOnly: true}, nil
}

// lockWait is how long OpenStore retries a held store lock.
const lockWait = time.Second

func isLockError(err error) bool {
	return strings.Contains(err.Error(), "Cannot acquire directory lock") ||
		strings.Contains(err.Error(), "resource temporarily unavailable")
}

// Path is the directory the store lives in.
func (s *Store) Path() string { return s.path }

// valueLogFileSize bounds one value-log file. Garbage collection rewrites
// whole files and never the one being written, so smaller files let it
// reclaim dead values sooner (Badger's default is 1 GB).
const valueLogFileSize = 128 << 20

// Close reclaims dead space in the value log, flushes and releases the store.
func (s *Store) Close() error {
	if s.readOnly {
		if err := s.db.Close(); err != nil {
			return fmt.Errorf("close store %s: %w", s.path, err)
		}
		return nil
	}
	gcErr := s.ReclaimSpace()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return gcErr
}

// Get returns the value under key, or ok=false when the key is absent.
func (s *Store) Get(key string) (val []byte, ok bool, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		ok = true
		val, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("store get %q: %w", key, err)
	}
	return val, ok, nil
}

// Has reports whether key is present without reading its value.
func (s *Store) Has(key string) (bool, error) {
	var ok bool
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		ok = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store has %q: %w", key, err)
	}
	return ok, nil
}

// Put writes one key. The write is durable against a killed process (it is in
// Badger's write-ahead log before Put returns).
func (s *Store) Put(key string, val []byte) error {
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(key), val) }); err != nil {
		return fmt.Errorf("store put %q: %w", key, err)
	}
	return nil
}

// GetJSON decodes the JSON value under key into v. ok is false when absent.
func (s *Store) GetJSON(key string, v any) (ok bool, err error) {
	b, ok, err := s.Get(key)
	if err != nil || !ok {
		return ok, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("store decode %q: %w", key, err)
	}
	return true, nil
}

// PutJSON encodes v as JSON under key.
func (s *Store) PutJSON(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store encode %q: %w", key, err)
	}
	return s.Put(key, b)
}

// DropPrefix deletes every key under prefix. Used to rebuild a derived table.
// It deletes key by key in write batches rather than with Badger's
// DropPrefix, which blocks every other writer while it runs (stages working
// ahead write beside the one that rebuilds its table).
func (s *Store) DropPrefix(prefix string) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := s.scanKeys(prefix, func(item *badger.Item) error { return wb.Delete(item.KeyCopy(nil)) })
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return fmt.Errorf("store drop %q: %w", prefix, err)
	}
	return nil
}

// Scan calls fn for every key under prefix in ascending key order, with the
// key stripped of the prefix. The value is only valid during the call. fn
// returning an error stops the scan and returns that error.
func (s *Store) Scan(prefix string, fn func(key string, val []byte) error) error {
	return s.ScanFrom(prefix, "", fn)
}

// ScanFrom is Scan starting at the first key >= prefix+start.
func (s *Store) ScanFrom(prefix, start string, fn func(key string, val []byte) error) error {
	p := []byte(prefix)
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = p
		opts.PrefetchValues = true
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(append(append([]byte{}, p...), start...)); it.ValidForPrefix(p); it.Next() {
			item := it.Item()
			var ferr error
			if err := item.Value(func(v []byte) error {
				ferr = fn(string(bytes.TrimPrefix(item.Key(), p)), v)
				return nil
			}); err != nil {
				return fmt.Errorf("store scan %q: %w", prefix, err)
			}
			if ferr != nil {
				return ferr
			}
		}
		return nil
	})
}

// scanKeys calls fn for every item under prefix (every item for ""), in
// key order, reading keys only: values stay on disk.
func (s *Store) scanKeys(prefix string, fn func(item *badger.Item) error) error {
	p := []byte(prefix)
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = p
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(p); it.Next() {
			if err := fn(it.Item()); err != nil {
				return err
			}
		}
		return nil
	})
}

// Count returns the number of keys under prefix (keys only, no values read).
func (s *Store) Count(prefix string) (int, error) {
	n := 0
	err := s.scanKeys(prefix, func(*badger.Item) error { n++; return nil })
	if err != nil {
		return 0, fmt.Errorf("store count %q: %w", prefix, err)
	}
	return n, nil
}

// Batch buffers writes and commits them in groups; use it to write a derived
// table. Flush must be called at the end. It is not safe for concurrent use.
type Batch struct {
	wb *badger.WriteBatch
}

// NewBatch starts a write batch.
func (s *Store) NewBatch() *Batch { return &Batch{wb: s.db.NewWriteBatch()} }

// Put adds a write to the batch.
func (b *Batch) Put(key string, val []byte) error {
	if err := b.wb.Set([]byte(key), val); err != nil {
		return fmt.Errorf("store batch put %q: %w", key, err)
	}
	return nil
}

// PutJSON adds a JSON-encoded write to the batch.
func (b *Batch) PutJSON(key string, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store encode %q: %w", key, err)
	}
	return b.Put(key, buf)
}

// Delete removes key in the batch.
func (b *Batch) Delete(key string) error {
	if err := b.wb.Delete([]byte(key)); err != nil {
		return fmt.Errorf("store: batch delete %s: %w", key, err)
	}
	return nil
}

// Flush commits every buffered write.
func (b *Batch) Flush() error {
	if err := b.wb.Flush(); err != nil {
		return fmt.Errorf("store batch flush: %w", err)
	}
	return nil
}

// Cancel drops the batch without committing what was not yet flushed.
func (b *Batch) Cancel() { b.wb.Cancel() }

// Delete removes one key.
func (s *Store) Delete(key string) error {
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(key)) }); err != nil {
		return fmt.Errorf("store delete %q: %w", key, err)
	}
	return nil
}
