package retriever

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sort"
	"unsafe"

	"github.com/sourcegraph/conc/pool"
)

// IVF file format, version 1 (little-endian). One file holds everything a
// search needs, so it can be written once into a folder and memory-mapped
// read-only by any number of processes:
//
//	header (4096 bytes): magic "SYNTHQIV", u32 version, u32 dim, u64 passages,
//	  u32 lists, u32 k-means iterations, u64 seed, u32 training sample per
//	  list, u32 fingerprint length, then the section offsets (u64 each:
//	  centroids, list starts, rows, id offsets, id bytes, vectors, file
//	  size), then the fingerprint (at most 2048 bytes: what produced the
//	  vectors, e.g. model and corpus digest).
//	centroids:   lists × dim float32, unit length
//	list starts: lists+1 u64, positions into rows and vectors
//	rows:        passages u32, the passage number (order added) at each position
//	id offsets:  passages+1 u64, by passage number, into the id bytes
//	id bytes:    the passage ids, concatenated
//	vectors:     passages × dim float32 in list order (64-byte aligned)
const (
	ivfMagic      = "SYNTHQIV"
	ivfVersion    = 1
	ivfHeaderSize = 4096
	ivfMaxFP      = 2048
)

// IVFParams are an inverted-file index's build settings. Zero fields take
// the defaults; all of them enter the file's header.
type IVFParams struct {
	// Lists is the number of k-means partitions (0: √passages, at least 1,
	// at most 65,536). 1 makes an exact flat index.
	Lists int
	// Iters is the k-means iterations (0: 10).
	Iters int
	// SamplePerList is how many training vectors k-means uses per list
	// (0: 64), as FAISS samples at most 256.
	SamplePerList int
	// Seed chooses the training sample and the initial centroids.
	Seed uint64
}

func (p IVFParams) withDefaults(n int) IVFParams {
	if p.Lists <= 0 {
		p.Lists = int(math.Round(math.Sqrt(float64(n))))
	}
	p.Lists = max(1, min(p.Lists, 65536, max(n, 1)))
	if p.Iters <= 0 {
		p.Iters = 10
	}
	if p.SamplePerList <= 0 {
		p.SamplePerList = 64
	}
	return p
}

// DefaultProbe is the lists an IVF search probes when asked for 0: a third
// of them, at least 32 (all of a small index). On the fake embedder's
// hashed bag-of-words vectors of the synthetic topical corpus it gives
// recall@100 0.977–0.986 against exact search at 256 and 768 dims, 100k and
// 1M passages (a quarter gave 0.970–0.979, too close to 0.97: BENCHMARKS.md
// "Approximate dense search"); every mining run measures its own.
func DefaultProbe(lists int) int { return min(lists, max(32, lists/3)) }

// IVFProgress is told how a build advances: step is "write", "train" or
// "assign", done of total units (vectors, or k-means iterations).
type IVFProgress func(step string, done, total int64)

// IVFWriter collects vectors for an IVF index file. Vectors go straight to a
// temporary file beside the index (4·dim bytes each, not kept in memory);
// ids are kept as one byte slice. Not safe for concurrent use.
type IVFWriter struct {
	path   string
	dim    int
	tmp    *os.File
	w      *bufio.Writer
	n      int
	ids    []byte
	idOff  []uint64
	buf    []byte
	closed bool
}

// NewIVFWriter starts an index file at path for vectors of dim dimensions.
// A leftover temporary file of an interrupted build is replaced.
func NewIVFWriter(path string, dim int) (*IVFWriter, error) {
	if dim <= 0 {
		return nil, fmt.Errorf("ivf index %s: dimension must be positive, got %d", path, dim)
	}
	tmp, err := os.Create(path + ".vectors.tmp")
	if err != nil {
		return nil, fmt.Errorf("ivf index: %w", err)
	}
	return &IVFWriter{path: path, dim: dim, tmp: tmp, w: bufio.NewWriterSize(tmp, 1<<20), idOff: []uint64{0}}, nil
}

// Len is the number of vectors added.
func (w *IVFWriter) Len() int { return w.n }

// Add appends a passage's vector. Equal scores rank the earlier added
// passage first.
func (w *IVFWriter) Add(id string, v []float32) error {
	if len(v) != w.dim {
		return fmt.Errorf("ivf index: passage %q has %d dimensions, the index %d", id, len(v), w.dim)
	}
	w.buf = w.buf[:0]
	for _, x := range v {
		w.buf = binary.LittleEndian.AppendUint32(w.buf, math.Float32bits(x))
	}
	if _, err := w.w.Write(w.buf); err != nil {
		return fmt.Errorf("ivf index: writing vectors: %w", err)
	}
	w.ids = append(w.ids, id...)
	w.idOff = append(w.idOff, uint64(len(w.ids)))
	w.n++
	return nil
}

// Abort removes the temporary files.
func (w *IVFWriter) Abort() {
	if !w.closed {
		w.closed = true
		w.tmp.Close()
		os.Remove(w.tmp.Name())
		os.Remove(w.path + ".tmp")
	}
}

// Build trains the partitions, writes the index file (to a temporary name,
// then renamed into place, so a killed build leaves no index behind and the
// next build starts over) and opens it. fingerprint (at most 2048 bytes)
// names what produced the vectors; Open returns it. The result depends only
// on the vectors, their order and p: the same input gives the same bytes on
// any machine and any number of cores. Cost: k-means, 2·sample·lists·dim
// flops an iteration, plus one assignment of every vector (2·passages·
// lists·dim flops), on every core; memory: the centroids, 4 bytes a
// passage, and the page cache of the vectors.
func (w *IVFWriter) Build(ctx context.Context, p IVFParams, fingerprint string, progress IVFProgress) (*IVF, error) {
	defer w.Abort()
	if len(fingerprint) > ivfMaxFP {
		return nil, fmt.Errorf("ivf index: fingerprint of %d bytes, at most %d", len(fingerprint), ivfMaxFP)
	}
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	if err := w.w.Flush(); err != nil {
		return nil, fmt.Errorf("ivf index: writing vectors: %w", err)
	}
	n, dim := w.n, w.dim
	raw, unmap, err := mapFile(w.tmp, n*dim*4)
	if err != nil {
		return nil, fmt.Errorf("ivf index: mapping vectors: %w", err)
	}
	defer unmap()
	vecs := floats(raw)
	p = p.withDefaults(n)
	centroids, err := trainKMeans(ctx, vecs, dim, p, progress)
	if err != nil {
		return nil, err
	}
	list, err := assign(ctx, vecs, dim, centroids, progress)
	if err != nil {
		return nil, err
	}
	// Counting sort by list, stable: within a list, passages in order.
	listStart := make([]uint64, p.Lists+1)
	for _, l := range list {
		listStart[l+1]++
	}
	for i := 1; i <= p.Lists; i++ {
		listStart[i] += listStart[i-1]
	}
	rows := make([]uint32, n)
	fill := slices.Clone(listStart[:p.Lists])
	for r, l := range list {
		rows[fill[l]] = uint32(r)
		fill[l]++
	}
	return w.write(ctx, p, fingerprint, centroids, listStart, rows, vecs, progress)
}

func (w *IVFWriter) write(ctx context.Context, p IVFParams, fp string, centroids []float32, listStart []uint64, rows []uint32, vecs []float32, progress IVFProgress) (*IVF, error) {
	n, dim := w.n, w.dim
	f, err := os.Create(w.path + ".tmp")
	if err != nil {
		return nil, fmt.Errorf("ivf index: %w", err)
	}
	defer f.Close()
	align := func(x uint64) uint64 { return (x + 63) &^ 63 }
	var off [7]uint64
	off[0] = ivfHeaderSize                            // centroids
	off[1] = align(off[0] + uint64(len(centroids))*4) // list starts
	off[2] = align(off[1] + uint64(len(listStart))*8) // rows
	off[3] = align(off[2] + uint64(n)*4)              // id offsets
	off[4] = align(off[3] + uint64(len(w.idOff))*8)   // id bytes
	off[5] = align(off[4] + uint64(len(w.ids)))       // vectors
	off[6] = off[5] + uint64(n)*uint64(dim)*4         // size
	hdr := make([]byte, 0, ivfHeaderSize)
	hdr = append(hdr, ivfMagic...)
	hdr = binary.LittleEndian.AppendUint32(hdr, ivfVersion)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(dim))
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(n))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(p.Lists))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(p.Iters))
	hdr = binary.LittleEndian.AppendUint64(hdr, p.Seed)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(p.SamplePerList))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(fp)))
	for _, o := range off {
		hdr = binary.LittleEndian.AppendUint64(hdr, o)
	}
	hdr = append(hdr, fp...)
	bw := bufio.NewWriterSize(f, 1<<20)
	pos := uint64(0)
	put := func(b []byte) {
		if err == nil {
			_, err = bw.Write(b)
			pos += uint64(len(b))
		}
	}
	pad := func(to uint64) { put(make([]byte, to-pos)) }
	put(hdr)
	pad(off[0])
	put(floatBytes(centroids))
	pad(off[1])
	put(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(listStart))), len(listStart)*8))
	pad(off[2])
	put(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(rows))), len(rows)*4))
	pad(off[3])
	put(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w.idOff))), len(w.idOff)*8))
	pad(off[4])
	put(w.ids)
	pad(off[5])
	for i, r := range rows {
		put(floatBytes(vecs[int(r)*dim : int(r+1)*dim]))
		if i%65536 == 65535 {
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
			progress("write", int64(i+1), int64(n))
		}
	}
	progress("write", int64(n), int64(n))
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = os.Rename(w.path+".tmp", w.path)
	}
	if err != nil {
		return nil, fmt.Errorf("ivf index: writing %s: %w", w.path, err)
	}
	return OpenIVF(w.path)
}

// trainKMeans is spherical k-means (inner product, unit centroids) on a
// seeded sample: the first Lists sampled vectors are the initial
// centroids; an emptied list takes the sample vector farthest from its
// centroid. Sums go in fixed chunks of 4096 vectors added in order, so the
// result does not depend on the number of cores.
func trainKMeans(ctx context.Context, vecs []float32, dim int, p IVFParams, progress IVFProgress) ([]float32, error) {
	n := len(vecs) / dim
	centroids := make([]float32, p.Lists*dim)
	if p.Lists == 1 {
		return centroids, nil // one list: nothing to train, never probed
	}
	m := min(n, p.Lists*p.SamplePerList)
	r := rand.New(rand.NewPCG(p.Seed, 0x6976666b6d65616e))
	sample := make([]int, n)
	for i := range sample {
		sample[i] = i
	}
	for i := 0; i < m; i++ { // partial Fisher–Yates
		j := i + r.IntN(n-i)
		sample[i], sample[j] = sample[j], sample[i]
	}
	sample = sample[:m]
	init := slices.Clone(sample[:p.Lists])
	slices.Sort(sample) // read the vectors in file order
	pts := make([]float32, m*dim)
	for i, s := range sample {
		copy(pts[i*dim:], vecs[s*dim:(s+1)*dim])
	}
	for i, s := range init {
		copy(centroids[i*dim:], vecs[s*dim:(s+1)*dim])
	}
	normalizeRows(centroids, dim)
	const chunk = 4096
	sums := make([]float64, p.Lists*dim)
	counts := make([]int, p.Lists)
	for it := 0; it < p.Iters; it++ {
		progress("train", int64(it), int64(p.Iters))
		best, err := nearest(ctx, pts, dim, centroids)
		if err != nil {
			return nil, err
		}
		clear(sums)
		clear(counts)
		part := make([]float64, p.Lists*dim)
		for lo := 0; lo < m; lo += chunk {
			clear(part)
			for i := lo; i < min(lo+chunk, m); i++ {
				c := int(best[i].doc)
				row := part[c*dim : (c+1)*dim]
				for j, x := range pts[i*dim : (i+1)*dim] {
					row[j] += float64(x)
				}
				counts[c]++
			}
			for j := range sums {
				sums[j] += part[j]
			}
		}
		// Empty lists take the points least like their centroid.
		var empty []int
		for c, k := range counts {
			if k == 0 {
				empty = append(empty, c)
			}
		}
		if len(empty) > 0 {
			order := make([]int, m)
			for i := range order {
				order[i] = i
			}
			sort.SliceStable(order, func(a, b int) bool { return best[order[a]].score < best[order[b]].score })
			for i, c := range empty {
				if i >= len(order) {
					break
				}
				for j, x := range pts[order[i]*dim : (order[i]+1)*dim] {
					sums[c*dim+j] = float64(x)
				}
				counts[c] = 1
			}
		}
		for c := 0; c < p.Lists; c++ {
			var norm float64
			for _, x := range sums[c*dim : (c+1)*dim] {
				norm += x * x
			}
			if norm == 0 {
				continue // keeps its centroid
			}
			norm = math.Sqrt(norm)
			for j, x := range sums[c*dim : (c+1)*dim] {
				centroids[c*dim+j] = float32(x / norm)
			}
		}
	}
	progress("train", int64(p.Iters), int64(p.Iters))
	return centroids, nil
}

// assign returns each vector's nearest centroid (by inner product; ties to
// the lower list), on every core.
func assign(ctx context.Context, vecs []float32, dim int, centroids []float32, progress IVFProgress) ([]uint32, error) {
	n := len(vecs) / dim
	out := make([]uint32, n)
	const chunk = 16384
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		best, err := nearest(ctx, vecs[lo*dim:hi*dim], dim, centroids)
		if err != nil {
			return nil, err
		}
		for i, b := range best {
			out[lo+i] = b.doc
		}
		progress("assign", int64(hi), int64(n))
	}
	return out, nil
}

// nearest returns for each row of pts its best centroid and score.
func nearest(ctx context.Context, pts []float32, dim int, centroids []float32) ([]scored, error) {
	m := len(pts) / dim
	qs := make([][]float32, m)
	for i := range qs {
		qs[i] = pts[i*dim : (i+1)*dim]
	}
	res, err := flatTopK(ctx, qs, centroids, dim, 1, 0, nil)
	if err != nil {
		return nil, err
	}
	out := make([]scored, m)
	for i, r := range res {
		out[i] = r[0]
	}
	return out, nil
}

// flatTopK is the exact top k rows of base (rows of dim floats) for every
// query, best first, ties to the lower row, on workers goroutines (0:
// GOMAXPROCS). rowOf, when set, maps a row to the number ties are broken
// by and results carry.
func flatTopK(ctx context.Context, qs [][]float32, base []float32, dim, k, workers int, rowOf []uint32) ([][]scored, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	out := make([][]scored, len(qs))
	chunk := denseQueryChunk
	if c := (len(qs) + workers - 1) / workers; c < chunk {
		chunk = max((c+3)/4*4, 4)
	}
	p := pool.New().WithMaxGoroutines(workers).WithErrors().WithContext(ctx)
	for lo := 0; lo < len(qs); lo += chunk {
		hi := min(lo+chunk, len(qs))
		p.Go(func(ctx context.Context) error {
			heaps := make([]hitHeap, hi-lo)
			scores := make([]float32, (hi-lo)*densePassageBlock)
			scanRows(ctx, qs[lo:hi], base, dim, k, rowOf, heaps, scores)
			for i, h := range heaps {
				out[lo+i] = h.sorted()
			}
			return ctx.Err()
		})
	}
	return out, p.Wait()
}

// scanRows offers every row of base to each query's heap (k at most), in
// blocks scored by the register-tiled kernel.
func scanRows(ctx context.Context, qs [][]float32, base []float32, dim, k int, rowOf []uint32, heaps []hitHeap, scores []float32) {
	n := len(base) / dim
	rows := blockRows(dim)
	for pb := 0; pb < n; pb += rows {
		if (pb/rows)%64 == 0 && ctx.Err() != nil {
			return
		}
		pe := min(pb+rows, n)
		w := pe - pb
		scoreTile(qs, base[pb*dim:pe*dim], dim, w, scores)
		for qi := range qs {
			h := &heaps[qi]
			for j, s := range scores[qi*densePassageBlock : qi*densePassageBlock+w] {
				doc := uint32(pb + j)
				if rowOf != nil {
					doc = rowOf[pb+j]
				}
				e := scored{doc: doc, score: s}
				switch {
				case len(*h) < k:
					h.push(e)
				case better(e, (*h)[0]):
					(*h)[0] = e
					h.down(0)
				}
			}
		}
	}
}

// sorted empties the heap, best first.
func (h *hitHeap) sorted() []scored {
	out := make([]scored, len(*h))
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = h.pop()
	}
	return out
}

func normalizeRows(v []float32, dim int) {
	for i := 0; i+dim <= len(v); i += dim {
		var s float64
		for _, x := range v[i : i+dim] {
			s += float64(x) * float64(x)
		}
		if s == 0 {
			continue
		}
		inv := 1 / math.Sqrt(s)
		for j := i; j < i+dim; j++ {
			v[j] = float32(float64(v[j]) * inv)
		}
	}
}

// IVF is an inverted-file index over a memory-mapped index file: passages
// partitioned by their nearest k-means centroid; a search scores the
// centroids, then every vector of the nprobe nearest lists exactly
// (float32, the same kernel as the exact index), so probing every list is
// exact search. Safe for concurrent use; Close unmaps.
type IVF struct {
	Header    IVFHeader
	path      string
	dim, n    int
	centroids []float32
	listStart []uint64
	rows      []uint32
	idOff     []uint64
	ids       []byte
	vecs      []float32
	unmap     func() error
}

// IVFHeader is what an index file says about itself.
type IVFHeader struct {
	Version     int
	Dim         int
	Passages    int
	Params      IVFParams
	Fingerprint string
}

// ReadIVFHeader reads an index file's header without mapping the file.
func ReadIVFHeader(path string) (IVFHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return IVFHeader{}, fmt.Errorf("ivf index: %w", err)
	}
	defer f.Close()
	b := make([]byte, ivfHeaderSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		return IVFHeader{}, fmt.Errorf("ivf index %s: reading header: %w", path, err)
	}
	h, _, err := parseIVFHeader(b)
	if err != nil {
		return IVFHeader{}, fmt.Errorf("ivf index %s: %w", path, err)
	}
	return h, nil
}

func parseIVFHeader(b []byte) (IVFHeader, [7]uint64, error) {
	var off [7]uint64
	if len(b) < ivfHeaderSize || string(b[:8]) != ivfMagic {
		return IVFHeader{}, off, errors.New("not a synthq IVF index file")
	}
	le := binary.LittleEndian
	h := IVFHeader{Version: int(le.Uint32(b[8:])), Dim: int(le.Uint32(b[12:])), Passages: int(le.Uint64(b[16:]))}
	if h.Version != ivfVersion {
		return h, off, fmt.Errorf("index file version %d, this synthq reads version %d (rebuild it)", h.Version, ivfVersion)
	}
	h.Params = IVFParams{Lists: int(le.Uint32(b[24:])), Iters: int(le.Uint32(b[28:])), Seed: le.Uint64(b[32:]), SamplePerList: int(le.Uint32(b[40:]))}
	fpLen := int(le.Uint32(b[44:]))
	for i := range off {
		off[i] = le.Uint64(b[48+8*i:])
	}
	if fpLen > ivfMaxFP {
		return h, off, errors.New("corrupt header (fingerprint length)")
	}
	h.Fingerprint = string(b[104 : 104+fpLen])
	return h, off, nil
}

// OpenIVF maps an index file read-only (on systems without mmap support it
// is read into memory). Memory: the mapping only; pages load as searches
// touch them.
func OpenIVF(path string) (*IVF, error) {
	b, unmap, err := mapPath(path, "ivf index")
	if err != nil {
		return nil, err
	}
	h, off, err := parseIVFHeader(b)
	if err == nil && off[6] != uint64(len(b)) {
		err = fmt.Errorf("file is %d bytes, its header says %d (truncated?)", len(b), off[6])
	}
	if err != nil {
		unmap()
		return nil, fmt.Errorf("ivf index %s: %w", path, err)
	}
	ix := &IVF{Header: h, path: path, dim: h.Dim, n: h.Passages, unmap: unmap}
	ix.centroids = floats(b[off[0] : off[0]+uint64(h.Params.Lists*h.Dim*4)])
	ix.listStart = unsafe.Slice((*uint64)(unsafe.Pointer(&b[off[1]])), h.Params.Lists+1)
	if h.Passages > 0 {
		ix.rows = unsafe.Slice((*uint32)(unsafe.Pointer(&b[off[2]])), h.Passages)
		ix.vecs = floats(b[off[5]:off[6]])
	}
	ix.idOff = unsafe.Slice((*uint64)(unsafe.Pointer(&b[off[3]])), h.Passages+1)
	ix.ids = b[off[4] : off[4]+ix.idOff[h.Passages]]
	return ix, nil
}

// Close unmaps the file; the index must not be used afterwards.
func (ix *IVF) Close() error { return ix.unmap() }

// Len is the number of indexed passages.
func (ix *IVF) Len() int { return ix.n }

// Path is the index file.
func (ix *IVF) Path() string { return ix.path }

// Dim is the vectors' dimension.
func (ix *IVF) Dim() int { return ix.dim }

// Lists is the number of partitions.
func (ix *IVF) Lists() int { return ix.Header.Params.Lists }

// ID is passage number r's id.
func (ix *IVF) ID(r int) string { return string(ix.ids[ix.idOff[r]:ix.idOff[r+1]]) }

// SearchBatch returns the top k passages by inner product for every query,
// best first, ties to the earlier added passage, probing the nprobe lists
// whose centroids score highest (0: DefaultProbe; at least the number of
// lists: exact search). The lists are shared out among workers goroutines
// (0: GOMAXPROCS) and each list's vectors are read once for all the
// queries probing it, scored by the exact index's kernel. Cost:
// 2·queries·dim·(lists + nprobe·passages/lists) flops.
func (ix *IVF) SearchBatch(ctx context.Context, queries [][]float32, k, nprobe, workers int) ([][]Hit, error) {
	workers, err := checkSearch("ivf search", queries, k, ix.dim, workers)
	if err != nil {
		return nil, err
	}
	lists := ix.Lists()
	if nprobe <= 0 {
		nprobe = DefaultProbe(lists)
	}
	nprobe = min(nprobe, lists)
	// Which lists each query probes, then which queries each list serves.
	probedBy := make([][]int32, lists)
	if nprobe == lists {
		all := make([]int32, len(queries))
		for i := range all {
			all[i] = int32(i)
		}
		for l := range probedBy {
			probedBy[l] = all
		}
	} else {
		probes, err := flatTopK(ctx, queries, ix.centroids, ix.dim, nprobe, workers, nil)
		if err != nil {
			return nil, err
		}
		for qi, ps := range probes {
			for _, p := range ps {
				probedBy[p.doc] = append(probedBy[p.doc], int32(qi))
			}
		}
	}
	// Contiguous runs of lists of about equal work per worker.
	var total float64
	cost := make([]float64, lists)
	for l := range cost {
		cost[l] = float64(ix.listStart[l+1]-ix.listStart[l]) * float64(len(probedBy[l]))
		total += cost[l]
	}
	parts := max(1, workers*4)
	heaps := make([][]hitHeap, 0, parts)
	p := pool.New().WithMaxGoroutines(workers).WithErrors().WithContext(ctx)
	for lo, next := 0, 0; lo < lists; lo = next {
		hi, acc := lo, 0.0
		for hi < lists && (acc < total/float64(parts) || hi == lo) {
			acc += cost[hi]
			hi++
		}
		hs := make([]hitHeap, len(queries))
		heaps = append(heaps, hs)
		lo := lo // the loop moves on before the worker runs
		p.Go(func(ctx context.Context) error {
			var qs [][]float32
			var scores []float32
			local := make([]hitHeap, 0, 64)
			for l := lo; l < hi; l++ {
				who := probedBy[l]
				a, b := ix.listStart[l], ix.listStart[l+1]
				if len(who) == 0 || a == b {
					continue
				}
				for len(who) > 0 { // at most 64 queries per pass (scores in cache)
					part := who[:min(len(who), 64)]
					who = who[len(part):]
					qs, local = qs[:0], local[:0]
					for _, qi := range part {
						qs = append(qs, queries[qi])
						local = append(local, hs[qi])
					}
					if len(scores) < len(qs)*densePassageBlock {
						scores = make([]float32, len(qs)*densePassageBlock)
					}
					scanRows(ctx, qs, ix.vecs[a*uint64(ix.dim):b*uint64(ix.dim)], ix.dim, k, ix.rows[a:b], local, scores)
					for i, qi := range part {
						hs[qi] = local[i]
					}
				}
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			return nil
		})
		next = hi
	}
	if err := p.Wait(); err != nil {
		return nil, err
	}
	out := make([][]Hit, len(queries))
	for qi := range queries {
		var h hitHeap
		for _, hs := range heaps {
			for _, e := range hs[qi] {
				switch {
				case len(h) < k:
					h.push(e)
				case better(e, h[0]):
					h[0] = e
					h.down(0)
				}
			}
		}
		best := h.sorted()
		hits := make([]Hit, len(best))
		for i, e := range best {
			hits[i] = Hit{DocID: ix.ID(int(e.doc)), Rank: i + 1, Score: e.score}
		}
		out[qi] = hits
	}
	return out, nil
}

// RecallCounts is how many of exact's first k hits approx also returns in
// its first k (found), of how many (wanted), summed over queries.
func RecallCounts(k int, approx, exact [][]Hit) (found, wanted int) {
	for i := range exact {
		got := map[string]bool{}
		for _, h := range approx[i][:min(k, len(approx[i]))] {
			got[h.DocID] = true
		}
		for _, h := range exact[i][:min(k, len(exact[i]))] {
			wanted++
			if got[h.DocID] {
				found++
			}
		}
	}
	return found, wanted
}

// RecallAt is the mean over queries of the share of exact's first k hits
// that approx also returns in its first k (queries exact has no hits for
// are left out; 1 when none is left).
func RecallAt(k int, approx, exact [][]Hit) float64 {
	sum, n := 0.0, 0
	for i := range exact {
		want := exact[i][:min(k, len(exact[i]))]
		if len(want) == 0 {
			continue
		}
		got := map[string]bool{}
		for _, h := range approx[i][:min(k, len(approx[i]))] {
			got[h.DocID] = true
		}
		found := 0
		for _, h := range want {
			if got[h.DocID] {
				found++
			}
		}
		sum += float64(found) / float64(len(want))
		n++
	}
	if n == 0 {
		return 1
	}
	return sum / float64(n)
}

func floats(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

func floatBytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*4)
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}
