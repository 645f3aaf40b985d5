// Package pipeline owns what every stage shares: the Badger store, fingerprints,
// the stage contract, the driver that runs stages in order, progress reporting
// and the manifest.
package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
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
	locks    sync.Map // name -> *sync.Mutex (Exclusive)
}

// Exclusive takes the in-process lock called name and returns its release:
// work that stages running side by side would each compute (a selection
// over the whole corpus) is done by the first, and the others wait and find
// it stored.
func (s *Store) Exclusive(name string) (release func()) {
	m, _ := s.locks.LoadOrStore(name, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// ErrStoreLocked is returned by OpenStore when another process holds the store.
var ErrStoreLocked = errors.New("store is in use: another synthq process holds it")

// OpenStore opens (creating if needed) the store at dir, for writing. If
// another process holds the directory, the error wraps ErrStoreLocked and
// names the directory. Badger recovers a store left by a killed process
// here (it may drop a half-written table).
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return openStore(dir, false)
}

// OpenExistingStore opens the store at dir for writing, as OpenStore, but
// creates nothing: a missing store is an error naming dir (and the likely
// store when dir is a run's OUT folder), and a damaged one (see
// CheckStore) is refused before Badger can repair it away.
func OpenExistingStore(dir string) (*Store, error) {
	if err := checkUnlocked(dir, false); err != nil {
		return nil, err
	}
	return openStore(dir, false)
}

// OpenStoreReadOnly opens the store at dir for reading only (stats,
// inspect, report, the shards of a merge, a prepared corpus): nothing in
// the folder is created, written or deleted, no garbage collection runs on
// Close, and any number of readers may open it at once (a prepared corpus
// on a shared volume is read by every shard of a job). A store a writing
// process holds is refused with ErrStoreLocked where the filesystem has
// flock (a shared lock is taken for the open; where flock is not
// supported, as on some network filesystems, the store is read without
// it). A missing or damaged store (CheckStore) is an error naming dir;
// one left by a killed writer must be recovered by that writer's command
// first (Badger cannot replay its log read-only).
func OpenStoreReadOnly(dir string) (*Store, error) {
	if err := CheckStore(dir); err != nil { // a missing store: no lock to take
		if !errors.Is(err, ErrStoreDamaged) {
			return nil, err
		}
	}
	release, err := waitLock(dir, true)
	if errors.Is(err, ErrStoreLocked) {
		return nil, err
	}
	if err == nil {
		defer release() // held while Badger opens: no writer can start meanwhile
	}
	if err := CheckStore(dir); err != nil {
		return nil, err
	}
	return openStore(dir, true)
}

// checkUnlocked runs CheckStore while holding the store's lock (shared for
// a reader), so that a store another process is writing (whose files
// disagree for a moment mid-write) is reported as held, not damaged; the
// lock is released before Badger takes its own.
func checkUnlocked(dir string, shared bool) error {
	if err := CheckStore(dir); err != nil && !errors.Is(err, ErrStoreDamaged) {
		return err
	}
	release, err := waitLock(dir, shared)
	if err != nil {
		return err
	}
	defer release()
	return CheckStore(dir)
}

// waitLock takes dir's lock, retrying for lockWait as openStore does.
func waitLock(dir string, shared bool) (func(), error) {
	for deadline := time.Now().Add(lockWait); ; time.Sleep(25 * time.Millisecond) {
		release, err := lockDir(dir, shared)
		if err == nil {
			return release, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EAGAIN) {
			return nil, fmt.Errorf("open store %s: %w", dir, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("open store %s: %w", dir, ErrStoreLocked)
		}
	}
}

func openStore(dir string, readOnly bool) (*Store, error) {
	if !readOnly {
		if err := precheckFormat(dir); err != nil {
			return nil, err
		}
	}
	opts := storeOptions(dir, readOnly)
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
		switch {
		case isLockError(err):
			return nil, fmt.Errorf("open store %s: %w", dir, ErrStoreLocked)
		case readOnly && errors.Is(err, badger.ErrTruncateNeeded):
			return nil, fmt.Errorf("open store %s: it was left by a killed process and needs recovery, which reading alone cannot do: "+
				"run the same `synthq run` (or `synthq export`) on it once: %w", dir, err)
		}
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	st := &Store{db: db, path: dir, readOnly: readOnly}
	if err := st.checkFormat(!readOnly); err != nil {
		db.Close()
		return nil, err
	}
	return st, nil
}

// precheckFormat refuses, before a writable open, an existing store of a
// newer format (checkFormat), reading it only: Badger's writable open
// creates a value-log file and its close compacts, which would change the
// newer synthq's store before it is refused. A store that cannot be read
// so (held by another process, left by a killed one) is left to the
// writable open, which says so or recovers it, and then checks. Cost: one
// read-only open of the store's MANIFEST and tables.
func precheckFormat(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, badger.ManifestFilename)); err != nil {
		return nil // a new store
	}
	release, err := lockDir(dir, true)
	if err != nil {
		return nil
	}
	defer release()
	db, err := badger.Open(storeOptions(dir, true))
	if err != nil {
		return nil
	}
	defer db.Close()
	return (&Store{db: db, path: dir, readOnly: true}).checkFormat(false)
}

// storeOptions are Badger's options for the store at dir.
func storeOptions(dir string, readOnly bool) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(nil).
		WithNumVersionsToKeep(1).
		WithCompactL0OnClose(!readOnly).
		WithValueThreshold(1 << 10).
		WithValueLogFileSize(valueLogFileSize).
		// Sized for synthq's access pattern (BENCHMARKS.md "Millions of
		// passages"): bulk writes in batches, then random point reads of
		// passages all over the corpus. Uncompressed tables are read straight
		// from their mapping (page cache, shared, reclaimable): no block cache
		// to fill, no block decompressed per random read, and a table build
		// holds one copy of its blocks, not two (the 1M-passage run's peak was
		// 1.04 GB of builder and cache buffers with Snappy).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		// Smaller memtables: a flush builds a table as big as the memtable
		// in memory, and up to NumMemtables of them wait; 16 MB × 3 bounds
		// that near 100 MB against 64 MB × 5 (~600 MB at the 1M peak). More
		// L0 tables is the price, which two compactors keep up with.
		WithMemTableSize(16 << 20).
		WithNumMemtables(3).
		WithNumCompactors(2).
		WithReadOnly(readOnly).
		WithBypassLockGuard(readOnly) // readers take their own shared lock (OpenStoreReadOnly)
}

// StoreFormat is the version of the store's layout (key prefixes and
// record encodings) this synthq writes and reads. It is recorded under
// KeyFormat when a store is first opened for writing; a store recording a
// newer one is refused by name, never read as if it were this one.
const StoreFormat = 1

// KeyFormat holds the store's format version, a decimal number.
const KeyFormat = PrefixMeta + "format"

// checkFormat refuses a store written in a newer format and, when
// writable, records StoreFormat in a store that records none (new, or
// written before the key existed: the same layout as format 1).
func (s *Store) checkFormat(writable bool) error {
	b, ok, err := s.Get(KeyFormat)
	if err != nil {
		return err
	}
	if !ok {
		if !writable {
			return nil
		}
		return s.Put(KeyFormat, []byte(strconv.Itoa(StoreFormat)))
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	switch {
	case err != nil || v < 1:
		return fmt.Errorf("open store %s: its format version %q is not a number this synthq knows (it reads format %d); was it written by synthq?", s.path, b, StoreFormat)
	case v > StoreFormat:
		return fmt.Errorf("open store %s: store format %d was written by a newer synthq; this synthq reads format %d at most: upgrade synthq, or give another --store", s.path, v, StoreFormat)
	}
	return nil
}

// ErrNoStore is returned (wrapped, naming the path) when a command that
// reads a store finds none there.
var ErrNoStore = errors.New("no store there")

// ErrStoreDamaged is returned (wrapped, naming the path and what is wrong)
// when a store's files do not agree with each other.
var ErrStoreDamaged = errors.New("store is damaged")

// CheckStore checks, reading only, that dir holds a Badger store whose
// MANIFEST is whole and lists exactly the table files (.sst) in the
// folder. Badger's own Open "repairs" a MANIFEST that is cut short by
// truncating it and deleting every table it no longer lists (read-only
// opens included): a damaged store would read as empty and lose its data.
// A missing store wraps ErrNoStore and, when dir is a run's OUT folder
// (dir/store holds a store), says so; a damaged one wraps ErrStoreDamaged.
// Cost: one read of the MANIFEST and one listing of the folder.
func CheckStore(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		hint := ""
		if sub := filepath.Join(dir, "store"); isStoreDir(sub) {
			hint = fmt.Sprintf(" (did you mean --store %s? %s looks like a run's OUT folder)", sub, dir)
		}
		if err == nil {
			return fmt.Errorf("store %s: %w: it is a file, not a store folder%s", dir, ErrNoStore, hint)
		}
		return fmt.Errorf("store %s: %w%s", dir, ErrNoStore, hint)
	}
	mf, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			hint := ""
			if sub := filepath.Join(dir, "store"); isStoreDir(sub) {
				hint = fmt.Sprintf(" (did you mean --store %s? %s looks like a run's OUT folder)", sub, dir)
			}
			return fmt.Errorf("store %s: %w: the folder holds no Badger MANIFEST%s", dir, ErrNoStore, hint)
		}
		return fmt.Errorf("store %s: %w", dir, err)
	}
	defer mf.Close()
	st, err := mf.Stat()
	if err != nil {
		return fmt.Errorf("store %s: %w", dir, err)
	}
	m, end, err := badger.ReplayManifestFile(mf, 0, badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		return fmt.Errorf("store %s: %w: its MANIFEST cannot be read (%v); nothing was changed: restore the store from a copy, or remove it to start anew", dir, ErrStoreDamaged, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("store %s: %w", dir, err)
	}
	var unlisted []string
	onDisk := map[uint64]bool{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sst") {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, ".sst"), 10, 64)
		if err != nil {
			continue
		}
		onDisk[id] = true
		if _, ok := m.Tables[id]; !ok {
			unlisted = append(unlisted, name)
		}
	}
	var missing []string
	for id := range m.Tables {
		if !onDisk[id] {
			missing = append(missing, fmt.Sprintf("%06d.sst", id))
		}
	}
	sort.Strings(missing)
	var why []string
	if end < st.Size() {
		why = append(why, fmt.Sprintf("its MANIFEST ends in a half-written entry (%d of %d bytes read)", end, st.Size()))
	}
	if len(unlisted) > 0 {
		why = append(why, fmt.Sprintf("its MANIFEST does not list %s", strings.Join(unlisted, ", ")))
	}
	if len(missing) > 0 {
		why = append(why, fmt.Sprintf("the table files %s its MANIFEST lists are missing", strings.Join(missing, ", ")))
	}
	if len(why) > 0 {
		return fmt.Errorf("store %s: %w: %s; nothing was changed (opening it would drop those tables): "+
			"restore the store from a copy, or remove it to start anew", dir, ErrStoreDamaged, strings.Join(why, "; "))
	}
	return nil
}

// isStoreDir says whether dir holds a Badger MANIFEST.
func isStoreDir(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, badger.ManifestFilename))
	return err == nil && fi.Mode().IsRegular()
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

// Close reclaims dead space in the value log (not for a store opened
// read-only), flushes and releases the store.
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

// GetEach reads keys in one read transaction, in the order given (callers
// sort them by key, so reads that share a table block find it mapped), and
// calls fn(i, value) for each key present; val is valid only during fn.
// Cost: one Badger point read per key, no copy of the values.
func (s *Store) GetEach(keys []string, fn func(i int, val []byte) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		for i, k := range keys {
			item, err := txn.Get([]byte(k))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("store get %q: %w", k, err)
			}
			var ferr error
			if err := item.Value(func(v []byte) error { ferr = fn(i, v); return nil }); err != nil {
				return fmt.Errorf("store get %q: %w", k, err)
			}
			if ferr != nil {
				return ferr
			}
		}
		return nil
	})
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
