package retriever

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"
)

// BM25 index file format, version 1 (little-endian). One file holds
// everything a search needs, as flat arrays, so it is written once (by
// synthq prepare) and memory-mapped read-only by any number of processes
// (the passage ids alone are copied to the heap on opening: hits keep them):
//
//	header (4096 bytes): magic "SYNTHQBM", u32 version, u32 length of the
//	  JSON that follows, then the JSON: k1, b, avgdl, the counts, the
//	  fingerprint (named values: what the index was built from), the section
//	  offsets and the CRC-32C of every byte after the header.
//	term starts: terms+1 u64, per term (sorted) its postings' positions
//	postings:    postings u32, passage numbers, ascending within a term
//	inv:         postings float32, 1 / (1 + tf · normInv[norm])
//	rank inv:    terms × 4 float32, per term the inv at ranks 1, 10, 100 and
//	             1000 of its postings sorted by inv (1 past its postings)
//	id offsets:  passages+1 u64, id bytes: the passage ids concatenated
//	term offsets: terms+1 u64, term bytes: the terms, sorted, concatenated
//	norms:       passages u8, each passage's length as Lucene's one-byte norm
//
// Sections start at multiples of 64 bytes. Version 2 added the norms (a file
// of version 1 is refused: build it again).
const (
	bm25Magic      = "SYNTHQBM"
	bm25Version    = 2
	bm25HeaderSize = 4096
)

// bm25Header is the JSON part of the file's header.
type bm25Header struct {
	K1          float32           `json:"k1"`
	B           float32           `json:"b"`
	AvgDL       float32           `json:"avgdl"`
	Passages    int               `json:"passages"`
	Terms       int               `json:"terms"`
	Postings    int               `json:"postings"`
	Fingerprint map[string]string `json:"fingerprint"`
	Sections    []uint64          `json:"sections"` // offsets of the 9 sections, then the file size
	CRC32C      uint32            `json:"crc32c"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sections are the index's arrays in file order, as bytes.
func (ix *BM25) sections() [][]byte {
	return [][]byte{
		sliceBytes(ix.start), sliceBytes(ix.docs), sliceBytes(ix.inv), sliceBytes(ix.rankInv),
		sliceBytes(ix.idOff), unsafe.Slice(unsafe.StringData(ix.ids), len(ix.ids)), sliceBytes(ix.termOff), ix.termBytes, ix.norms,
	}
}

// WriteFile writes the index to path (a temporary file in the same folder,
// synced, then renamed into place: a reader sees no file or the whole one).
// fingerprint names what the index was built from (corpus digest,
// analyzer, ...); OpenBM25 refuses a file whose fingerprint or parameters
// differ from the ones asked for. Cost: one write of the index (about 8
// bytes a posting) and a CRC-32C of it.
func (ix *BM25) WriteFile(path string, fingerprint map[string]string) (err error) {
	if !littleEndian() {
		return errors.New("bm25 index: big-endian machines are not supported")
	}
	secs := ix.sections()
	h := bm25Header{K1: ix.params.K1, B: ix.params.B, AvgDL: ix.avgdl, Passages: ix.n,
		Terms: ix.Terms(), Postings: len(ix.docs), Fingerprint: fingerprint}
	off := uint64(bm25HeaderSize)
	crc := crc32.New(castagnoli)
	var pad [64]byte
	for _, s := range secs {
		h.Sections = append(h.Sections, off)
		crc.Write(s)
		off += uint64(len(s))
		if p := (64 - off%64) % 64; p > 0 {
			crc.Write(pad[:p])
			off += p
		}
	}
	h.Sections = append(h.Sections, off)
	h.CRC32C = crc.Sum32()
	js, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("bm25 index %s: %w", path, err)
	}
	if 16+len(js) > bm25HeaderSize {
		return fmt.Errorf("bm25 index %s: header of %d bytes (fingerprint too long?)", path, 16+len(js))
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("bm25 index: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	hdr := make([]byte, bm25HeaderSize)
	copy(hdr, bm25Magic)
	binary.LittleEndian.PutUint32(hdr[8:], bm25Version)
	binary.LittleEndian.PutUint32(hdr[12:], uint32(len(js)))
	copy(hdr[16:], js)
	w.Write(hdr)
	written := uint64(bm25HeaderSize)
	for _, s := range secs {
		w.Write(s)
		written += uint64(len(s))
		if p := (64 - written%64) % 64; p > 0 {
			w.Write(pad[:p])
			written += p
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("bm25 index %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("bm25 index %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bm25 index %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("bm25 index %s: %w", path, err)
	}
	return nil
}

// OpenBM25 maps an index file written by WriteFile read-only (the pages are
// shared by every process that maps it) and checks it: magic, version,
// sizes, the CRC-32C of its contents, and that it was built with params
// (nil: the defaults) from what fingerprint names; any difference is an
// error naming it. an is the analyzer queries go through (nil: English),
// which must be the one the index was built with (put its name in the
// fingerprint). Cost: one read of the file for the checksum; search then
// costs as on a built index. Close releases the mapping.
func OpenBM25(path string, an *Analyzer, params *BM25Params, fingerprint map[string]string) (*BM25, error) {
	if an == nil {
		an = NewEnglishAnalyzer()
	}
	var p BM25Params
	if params != nil {
		p = *params
	} else {
		p.EnsureDefaults()
	}
	b, unmap, err := mapPath(path, "bm25 index")
	if err != nil {
		return nil, err
	}
	ix, err := bm25FromBytes(b, p, fingerprint)
	if err != nil {
		unmap()
		return nil, fmt.Errorf("bm25 index %s: %w", path, err)
	}
	ix.an, ix.unmap = an, unmap
	return ix, nil
}

// bm25FromBytes checks a whole index file held in b and makes an index
// whose arrays point into b.
func bm25FromBytes(b []byte, p BM25Params, fingerprint map[string]string) (*BM25, error) {
	if len(b) < bm25HeaderSize || string(b[:8]) != bm25Magic {
		return nil, errors.New("not a synthq BM25 index file (bad magic)")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != bm25Version {
		return nil, fmt.Errorf("format version %d, this synthq reads %d; build it again", v, bm25Version)
	}
	n := int(binary.LittleEndian.Uint32(b[12:]))
	if 16+n > bm25HeaderSize {
		return nil, errors.New("corrupt header")
	}
	var h bm25Header
	dec := json.NewDecoder(bytes.NewReader(b[16 : 16+n]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("corrupt header: %w", err)
	}
	var diffs []string
	if h.K1 != p.K1 {
		diffs = append(diffs, fmt.Sprintf("k1: the file has %g, this run %g", h.K1, p.K1))
	}
	if h.B != p.B {
		diffs = append(diffs, fmt.Sprintf("b: the file has %g, this run %g", h.B, p.B))
	}
	keys := slices.Sorted(maps.Keys(fingerprint))
	for k := range h.Fingerprint {
		if _, ok := fingerprint[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		have, ok := h.Fingerprint[k]
		want := fingerprint[k]
		if !ok {
			have = "(none)"
		}
		if _, ok := fingerprint[k]; !ok {
			want = "(none)"
		}
		if have != want {
			diffs = append(diffs, fmt.Sprintf("%s: the file has %q, this run %q", k, have, want))
		}
	}
	if len(diffs) > 0 {
		return nil, fmt.Errorf("built from other data or with other settings than this run:\n  %s", strings.Join(diffs, "\n  "))
	}
	const nsec = 9
	if len(h.Sections) != nsec+1 || h.Sections[nsec] != uint64(len(b)) {
		return nil, fmt.Errorf("file is %d bytes, its header says otherwise (truncated?)", len(b))
	}
	want := []uint64{uint64(h.Terms+1) * 8, uint64(h.Postings) * 4, uint64(h.Postings) * 4, uint64(h.Terms) * 16,
		uint64(h.Passages+1) * 8, 0, uint64(h.Terms+1) * 8, 0, uint64(h.Passages)}
	for i := range nsec {
		lo, hi := h.Sections[i], h.Sections[i+1]
		if lo < bm25HeaderSize || hi < lo || lo%64 != 0 || (want[i] != 0 && (hi-lo < want[i] || hi-lo-want[i] >= 64)) {
			return nil, fmt.Errorf("corrupt header: section %d at %d..%d", i, lo, hi)
		}
	}
	if crc := crc32.Checksum(b[bm25HeaderSize:], castagnoli); crc != h.CRC32C {
		return nil, fmt.Errorf("corrupt: checksum %08x, the header says %08x", crc, h.CRC32C)
	}
	sec := func(i int, size uint64) []byte { return b[h.Sections[i] : h.Sections[i]+size] }
	ix := &BM25{params: p, n: h.Passages, avgdl: h.AvgDL,
		start:   castSlice[uint64](sec(0, want[0])),
		docs:    castSlice[uint32](sec(1, want[1])),
		inv:     castSlice[float32](sec(2, want[2])),
		rankInv: castSlice[float32](sec(3, want[3])),
		idOff:   castSlice[uint64](sec(4, want[4])),
		termOff: castSlice[uint64](sec(6, want[6])),
		norms:   sec(8, want[8]),
	}
	// The variable-length sections end where their offsets say.
	idBytes := b[h.Sections[5]:h.Sections[6]]
	ix.termBytes = b[h.Sections[7]:h.Sections[8]]
	if err := ix.check(uint64(len(idBytes))); err != nil {
		return nil, err
	}
	ix.ids = string(idBytes[:ix.idOff[ix.n]])
	ix.termBytes = ix.termBytes[:ix.termOff[len(ix.termOff)-1]]
	ix.initScratch()
	return ix, nil
}

// check verifies the offsets a search follows stay inside their arrays
// (a file can pass its checksum and still be wrong if written by another
// program): one pass over the offsets, not over the postings.
func (ix *BM25) check(idBytes uint64) error {
	mono := func(name string, off []uint64, limit uint64) error {
		if len(off) == 0 || off[0] != 0 {
			return fmt.Errorf("corrupt %s", name)
		}
		for i := 1; i < len(off); i++ {
			if off[i] < off[i-1] {
				return fmt.Errorf("corrupt %s at %d", name, i)
			}
		}
		if off[len(off)-1] > limit {
			return fmt.Errorf("corrupt %s: ends at %d of %d", name, off[len(off)-1], limit)
		}
		return nil
	}
	if err := mono("term starts", ix.start, uint64(len(ix.docs))); err != nil {
		return err
	}
	if ix.start[len(ix.start)-1] != uint64(len(ix.docs)) {
		return errors.New("corrupt term starts: postings left over")
	}
	if err := mono("id offsets", ix.idOff, idBytes); err != nil {
		return err
	}
	return mono("term offsets", ix.termOff, uint64(len(ix.termBytes)))
}

// Close releases a loaded index's file mapping; the index must not be used
// afterwards. On a built index it does nothing.
func (ix *BM25) Close() error {
	if ix.unmap == nil {
		return nil
	}
	err := ix.unmap()
	ix.unmap = nil
	return err
}

// sliceBytes views a slice of fixed-size numbers as its bytes.
func sliceBytes[T uint32 | uint64 | float32](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*int(unsafe.Sizeof(v[0])))
}

// castSlice views bytes (aligned, from the mapping) as fixed-size numbers.
func castSlice[T uint32 | uint64 | float32](b []byte) []T {
	var z T
	if len(b) == 0 {
		return []T{}
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), len(b)/int(unsafe.Sizeof(z)))
}
