package stages

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
)

// The passage texts file (STORE/index/passages-<fingerprint>.txt), written
// by the corpus stage beside the store: every passage's title and text back
// to back, then a table of ids (sorted) and offsets. Label and export read
// the passages they need from it with one pread each, instead of a Badger
// point read: the pages read stay in the page cache, not in the process's
// RSS, and no LSM lookup is paid (BENCHMARKS.md "Millions of passages").
// The store stays the record: a passage the file lacks, or whose checksum
// fails, is read from the store; a file that is missing, unfinished, or made
// from another corpus is not used (and is written again by the next run).
//
// Layout, little-endian:
//
//	header (64 bytes): magic "SQPTEXT1", version u32, crc32c u32 (of the
//	  header's bytes 16–64 and the tables), passages u64, body bytes u64,
//	  id bytes u64, fingerprint [16]byte, file size u64
//	body: per passage, crc32c u32 (of what follows), uvarint title length,
//	  title, text
//	tables: id ends [n]u64, ids, record offsets [n]u64, record lengths
//	  [n]u32, in sorted id order
const (
	passageFileMagic   = "SQPTEXT1"
	passageFileVersion = 1
	passageHeaderSize  = 64
	passageFilePrefix  = "passages-"
	passageFileExt     = ".txt"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// passageFileFP names what a passage texts file holds: the corpus, by
// digest and passage count (as the store's doc table, see CorpusStage).
func passageFileFP(meta dataset.CorpusMeta) [16]byte {
	h := sha256.Sum256([]byte("synthq passage texts v1\x00" + meta.SHA256 + "\x00" + strconv.Itoa(meta.Passages)))
	var fp [16]byte
	copy(fp[:], h[:])
	return fp
}

// passageFilePath is the passage texts file of the store at dir for the
// corpus meta describes.
func passageFilePath(dir string, meta dataset.CorpusMeta) string {
	fp := passageFileFP(meta)
	return filepath.Join(dir, "index", passageFilePrefix+hex.EncodeToString(fp[:12])+passageFileExt)
}

// passageFileWriter writes a passage texts file: into a temporary file in
// the folder, renamed into place by commit once complete and synced, so a
// killed writer leaves no file that could be taken for a finished one.
// Memory: the ids and three numbers a passage until commit (~30 MB at 1M
// passages).
type passageFileWriter struct {
	dir, tmp string
	f        *os.File
	w        *bufio.Writer
	pos      uint64
	ids      []byte
	idEnd    []uint64
	off      []uint64
	lens     []uint32
	rec      []byte
}

// newPassageFileWriter starts a passage texts file in dir (created if
// needed), removing the temporary files of writers killed before.
func newPassageFileWriter(dir string) (*passageFileWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("passage texts file: %w", err)
	}
	if old, _ := filepath.Glob(filepath.Join(dir, "."+passageFilePrefix+"*.tmp")); len(old) > 0 {
		for _, f := range old {
			os.Remove(f)
		}
	}
	f, err := os.CreateTemp(dir, "."+passageFilePrefix+"*.tmp")
	if err != nil {
		return nil, fmt.Errorf("passage texts file: %w", err)
	}
	w := &passageFileWriter{dir: dir, tmp: f.Name(), f: f, w: bufio.NewWriterSize(f, 1<<20), pos: passageHeaderSize}
	if _, err := w.w.Write(make([]byte, passageHeaderSize)); err != nil {
		w.abort()
		return nil, fmt.Errorf("passage texts file: %w", err)
	}
	return w, nil
}

// add appends one passage (ids are unique; any order).
func (w *passageFileWriter) add(id, title, text string) error {
	r := append(w.rec[:0], 0, 0, 0, 0)
	r = binary.AppendUvarint(r, uint64(len(title)))
	r = append(r, title...)
	r = append(r, text...)
	binary.LittleEndian.PutUint32(r, crc32.Checksum(r[4:], castagnoli))
	w.rec = r
	if _, err := w.w.Write(r); err != nil {
		return fmt.Errorf("passage texts file: %w", err)
	}
	w.ids = append(w.ids, id...)
	w.idEnd = append(w.idEnd, uint64(len(w.ids)))
	w.off = append(w.off, w.pos)
	w.lens = append(w.lens, uint32(len(r)))
	w.pos += uint64(len(r))
	return nil
}

// commit writes the tables and the header for the corpus meta describes,
// syncs, and moves the file into place at passageFilePath(store, meta),
// removing the store's passage texts files of other corpora. It returns
// the file's path.
func (w *passageFileWriter) commit(store string, meta dataset.CorpusMeta) (string, error) {
	n := len(w.idEnd)
	id := func(i int) []byte {
		lo := uint64(0)
		if i > 0 {
			lo = w.idEnd[i-1]
		}
		return w.ids[lo:w.idEnd[i]]
	}
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return bytes.Compare(id(int(a)), id(int(b))) })
	body := w.pos - passageHeaderSize
	tables := 20*uint64(n) + uint64(len(w.ids))
	fp := passageFileFP(meta)
	var header [passageHeaderSize]byte
	copy(header[:8], passageFileMagic)
	binary.LittleEndian.PutUint32(header[8:], passageFileVersion)
	binary.LittleEndian.PutUint64(header[16:], uint64(n))
	binary.LittleEndian.PutUint64(header[24:], body)
	binary.LittleEndian.PutUint64(header[32:], uint64(len(w.ids)))
	copy(header[40:56], fp[:])
	binary.LittleEndian.PutUint64(header[56:], passageHeaderSize+body+tables)
	crc := crc32.Checksum(header[16:], castagnoli)
	var b8 [8]byte
	put := func(p []byte) error {
		crc = crc32.Update(crc, castagnoli, p)
		_, err := w.w.Write(p)
		return err
	}
	var err error
	end := uint64(0)
	for _, i := range order {
		end += uint64(len(id(int(i))))
		binary.LittleEndian.PutUint64(b8[:], end)
		err = cmp.Or(err, put(b8[:]))
	}
	for _, i := range order {
		err = cmp.Or(err, put(id(int(i))))
	}
	for _, i := range order {
		binary.LittleEndian.PutUint64(b8[:], w.off[i])
		err = cmp.Or(err, put(b8[:]))
	}
	for _, i := range order {
		binary.LittleEndian.PutUint32(b8[:4], w.lens[i])
		err = cmp.Or(err, put(b8[:4]))
	}
	if err == nil {
		err = w.w.Flush()
	}
	if err != nil {
		w.abort()
		return "", fmt.Errorf("passage texts file: %w", err)
	}
	binary.LittleEndian.PutUint32(header[12:], crc)
	if _, err := w.f.WriteAt(header[:], 0); err != nil {
		w.abort()
		return "", fmt.Errorf("passage texts file: %w", err)
	}
	// Readable by every process on a shared prepared folder, as the
	// store's own files (CreateTemp makes it the owner's alone).
	if err := w.f.Chmod(0o644); err != nil {
		w.abort()
		return "", fmt.Errorf("passage texts file: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		w.abort()
		return "", fmt.Errorf("passage texts file: %w", err)
	}
	if err := w.f.Close(); err != nil {
		w.f = nil
		w.abort()
		return "", fmt.Errorf("passage texts file: %w", err)
	}
	w.f = nil
	path := passageFilePath(store, meta)
	if err := os.Rename(w.tmp, path); err != nil {
		w.abort()
		return "", fmt.Errorf("passage texts file: %w", err)
	}
	if d, err := os.Open(w.dir); err == nil {
		d.Sync()
		d.Close()
	}
	removeOtherPassageFiles(w.dir, path)
	return path, nil
}

// abort removes the temporary file.
func (w *passageFileWriter) abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	os.Remove(w.tmp)
}

// removeOtherPassageFiles removes the passage texts files in dir other
// than keep (those of corpora the store no longer holds).
func removeOtherPassageFiles(dir, keep string) {
	old, _ := filepath.Glob(filepath.Join(dir, passageFilePrefix+"*"+passageFileExt))
	for _, f := range old {
		if f != keep {
			os.Remove(f)
		}
	}
}

// passageFile is an open passage texts file: its tables in memory (the ids
// and 20 bytes a passage: ~30 MB at 1M passages), the texts read with one
// pread a passage. Safe for concurrent use.
type passageFile struct {
	path  string
	f     *os.File
	ids   string
	idEnd []uint64
	off   []uint64
	lens  []uint32
}

// openPassageFile opens the passage texts file at path if it is complete
// and was written for the corpus meta describes: its size, fingerprint,
// passage count and the checksum of its header and tables must agree.
// Cost: one read of the tables.
func openPassageFile(path string, meta dataset.CorpusMeta) (*passageFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	pf, err := readPassageTables(f, meta)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("passage texts file %s: %w", path, err)
	}
	pf.path = path
	return pf, nil
}

func readPassageTables(f *os.File, meta dataset.CorpusMeta) (*passageFile, error) {
	var h [passageHeaderSize]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if string(h[:8]) != passageFileMagic || binary.LittleEndian.Uint32(h[8:]) != passageFileVersion {
		return nil, errors.New("not a passage texts file of this version")
	}
	n := binary.LittleEndian.Uint64(h[16:])
	body := binary.LittleEndian.Uint64(h[24:])
	idBytes := binary.LittleEndian.Uint64(h[32:])
	size := binary.LittleEndian.Uint64(h[56:])
	fp := passageFileFP(meta)
	if !bytes.Equal(h[40:56], fp[:]) || n != uint64(meta.Passages) {
		return nil, errors.New("written for another corpus")
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	tables := 20*n + idBytes
	if uint64(fi.Size()) != size || size != passageHeaderSize+body+tables {
		return nil, fmt.Errorf("%d bytes, its header says %d: incomplete", fi.Size(), size)
	}
	t := make([]byte, tables)
	if _, err := f.ReadAt(t, int64(passageHeaderSize+body)); err != nil {
		return nil, fmt.Errorf("tables: %w", err)
	}
	if crc32.Update(crc32.Checksum(h[16:], castagnoli), castagnoli, t) != binary.LittleEndian.Uint32(h[12:]) {
		return nil, errors.New("checksum of its tables does not match")
	}
	pf := &passageFile{f: f, idEnd: make([]uint64, n), off: make([]uint64, n), lens: make([]uint32, n)}
	for i := range pf.idEnd {
		pf.idEnd[i] = binary.LittleEndian.Uint64(t[8*i:])
	}
	t = t[8*n:]
	pf.ids = string(t[:idBytes])
	t = t[idBytes:]
	for i := range pf.off {
		pf.off[i] = binary.LittleEndian.Uint64(t[8*i:])
		pf.lens[i] = binary.LittleEndian.Uint32(t[8*n+4*uint64(i):])
		if pf.off[i] < passageHeaderSize || pf.off[i]+uint64(pf.lens[i]) > passageHeaderSize+body ||
			(i > 0 && pf.idEnd[i] < pf.idEnd[i-1]) || pf.idEnd[i] > idBytes {
			return nil, errors.New("tables out of range")
		}
	}
	return pf, nil
}

func (pf *passageFile) id(i int) string {
	lo := uint64(0)
	if i > 0 {
		lo = pf.idEnd[i-1]
	}
	return pf.ids[lo:pf.idEnd[i]]
}

// find returns the index of passage id, if the file holds it.
func (pf *passageFile) find(id string) (int, bool) {
	i := sort.Search(len(pf.idEnd), func(i int) bool { return pf.id(i) >= id })
	return i, i < len(pf.idEnd) && pf.id(i) == id
}

// read returns passage i (title and text), reading into buf; ok is false
// when the record's checksum fails (a damaged file: the caller reads the
// store instead).
func (pf *passageFile) read(i int, buf []byte) (p dataset.Passage, _ []byte, ok bool, err error) {
	n := int(pf.lens[i])
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := pf.f.ReadAt(buf, int64(pf.off[i])); err != nil {
		return p, buf, false, fmt.Errorf("passage texts file %s: %w", pf.path, err)
	}
	if n < 5 || crc32.Checksum(buf[4:], castagnoli) != binary.LittleEndian.Uint32(buf) {
		return p, buf, false, nil
	}
	tl, k := binary.Uvarint(buf[4:])
	if k <= 0 || uint64(n-4-k) < tl {
		return p, buf, false, nil
	}
	rest := buf[4+k:]
	p.Title, p.Text = string(rest[:tl]), string(rest[tl:])
	return p, buf, true, nil
}

// Close closes the file.
func (pf *passageFile) Close() error { return pf.f.Close() }

// writePassageFile writes the passage texts file of st from its doc table
// (one scan), for a store whose corpus stage did not write one (made
// before the file existed, moved without it, or copied from a prepared
// corpus whose folder has none).
func writePassageFile(ctx context.Context, st *pipeline.Store, meta dataset.CorpusMeta) error {
	w, err := newPassageFileWriter(filepath.Join(st.Path(), "index"))
	if err != nil {
		return err
	}
	k := 0
	err = st.Scan(pipeline.PrefixDoc, func(id string, v []byte) error {
		if k++; k%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		var p dataset.Passage
		if err := dataset.DecodePassage(v, &p); err != nil {
			return fmt.Errorf("store decode %q: %w", dataset.DocKey(id), err)
		}
		return w.add(id, p.Title, p.Text)
	})
	if err != nil {
		w.abort()
		return err
	}
	_, err = w.commit(st.Path(), meta)
	return err
}

// hasPassageFile reports whether the store at dir holds a usable passage
// texts file for the corpus meta describes.
func hasPassageFile(dir string, meta dataset.CorpusMeta) bool {
	pf, err := openPassageFile(passageFilePath(dir, meta), meta)
	if err != nil {
		return false
	}
	pf.Close()
	return true
}

// passageSource reads passages by id: from the passage texts file of the
// store (or of the prepared corpus the run reads) when there is a usable
// one, else, and for any passage the file lacks or holds damaged, from the
// store.
type passageSource struct {
	st   *pipeline.Store
	file *passageFile
}

// openPassages is st's passage source: the passage texts file of st, else
// that of prep (a prepared corpus's folder, read-only), else none (reads
// go to the store). A file that exists but cannot be used is named in a
// warning.
func openPassages(st, prep *pipeline.Store, warn func(string, ...any)) *passageSource {
	src := &passageSource{st: st}
	var meta dataset.CorpusMeta
	if ok, err := st.GetJSON(dataset.MetaCorpus, &meta); err != nil || !ok {
		return src
	}
	for _, s := range []*pipeline.Store{st, prep} {
		if s == nil {
			continue
		}
		pf, err := openPassageFile(passageFilePath(s.Path(), meta), meta)
		if err == nil {
			src.file = pf
			return src
		}
		if !errors.Is(err, os.ErrNotExist) && warn != nil {
			warn("warning: %v; passages are read from the store (the next run writes the file again)\n", err)
		}
	}
	return src
}

// close closes the file, if any.
func (s *passageSource) close() {
	if s.file != nil {
		s.file.Close()
	}
}

// readEach calls fn(j, passage ids[j]) for each id found, from the file
// where it can, the rest from the store in one transaction (in key order:
// ids sorted).
func (s *passageSource) readEach(ids []string, fn func(j int, p dataset.Passage) error) error {
	rest := ids
	var restAt []int
	if s.file != nil {
		rest = nil
		var buf []byte
		for j, id := range ids {
			i, ok := s.file.find(id)
			if ok {
				var p dataset.Passage
				var err error
				p, buf, ok, err = s.file.read(i, buf)
				if err != nil {
					return err
				}
				if ok {
					if err := fn(j, p); err != nil {
						return err
					}
					continue
				}
			}
			rest, restAt = append(rest, id), append(restAt, j)
		}
		if len(rest) == 0 {
			return nil
		}
	}
	keys := make([]string, len(rest))
	for j, id := range rest {
		keys[j] = dataset.DocKey(id)
	}
	return s.st.GetEach(keys, func(j int, val []byte) error {
		var p dataset.Passage
		if err := dataset.DecodePassage(val, &p); err != nil {
			return fmt.Errorf("store decode %q: %w", keys[j], err)
		}
		if restAt != nil {
			j = restAt[j]
		}
		return fn(j, p)
	})
}
