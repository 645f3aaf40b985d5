package retriever

import (
	"context"
	"fmt"
	"runtime"
)

// Dense is an exact inner-product index over float32 vectors (unit length
// for cosine similarity). Vectors are kept row-major in one slice: 4·dim
// bytes per passage. Add is not safe for concurrent use; Search and
// SearchBatch are.
type Dense struct {
	dim  int
	ids  []string
	vecs []float32
}

// NewDense returns an empty index of vectors with dim dimensions.
func NewDense(dim int) *Dense { return &Dense{dim: dim} }

// Dim is the vectors' dimension.
func (d *Dense) Dim() int { return d.dim }

// Len is the number of indexed passages.
func (d *Dense) Len() int { return len(d.ids) }

// Add appends a passage's vector. Equal scores rank the earlier added
// passage first.
func (d *Dense) Add(id string, v []float32) error {
	if len(v) != d.dim {
		return fmt.Errorf("dense index: passage %q has %d dimensions, the index %d", id, len(v), d.dim)
	}
	d.ids = append(d.ids, id)
	d.vecs = append(d.vecs, v...)
	return nil
}

// Block sizes: a passage block (blockRows rows, at most densePassageBlock)
// stays in L2 while every query of a chunk is scored against it.
const (
	densePassageBlock = 256
	denseQueryChunk   = 64
	// denseBlockBytes: 192 KiB of passages, with four queries (12 KB at
	// 768 dims) in L1, in a 512 KiB L2 (20% more GFLOP per CPU-second at
	// 768 dims than 768 KiB blocks: BENCHMARKS.md "Dense exact top-k").
	denseBlockBytes = 192 << 10
)

// blockRows is the rows of a passage block at dim dimensions: about
// denseBlockBytes, at most densePassageBlock rows, at least 16.
func blockRows(dim int) int {
	return max(16, min(densePassageBlock, denseBlockBytes/(4*dim)))
}

// Search returns the top k passages for one query vector.
func (d *Dense) Search(ctx context.Context, q []float32, k int) ([]Hit, error) {
	res, err := d.SearchBatch(ctx, [][]float32{q}, k, 1)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// SearchBatch returns the exact top k passages by inner product for every
// query, best first, ties to the earlier added passage. Queries go in chunks
// of 64 to a pool of workers (0: GOMAXPROCS); each chunk streams the
// passages once, in blocks that stay in cache while a register-tiled kernel
// scores 4 queries × 2 passages at a time, and keeps a bounded heap per query
// (no sort of all scores). Cost: 2·queries·passages·dim flops.
func (d *Dense) SearchBatch(ctx context.Context, queries [][]float32, k, workers int) ([][]Hit, error) {
	workers, err := checkSearch("dense search", queries, k, d.dim, workers)
	if err != nil {
		return nil, err
	}
	res, err := flatTopK(ctx, queries, d.vecs, d.dim, k, workers, nil)
	if err != nil {
		return nil, err
	}
	out := make([][]Hit, len(res))
	for qi, best := range res {
		hits := make([]Hit, len(best))
		for i, e := range best {
			hits[i] = Hit{DocID: d.ids[e.doc], Rank: i + 1, Score: e.score}
		}
		out[qi] = hits
	}
	return out, nil
}

// checkSearch checks a batch search's arguments (what names the search in
// errors: k positive, every query of dim dimensions) and returns the
// number of workers (0: GOMAXPROCS).
func checkSearch(what string, queries [][]float32, k, dim, workers int) (int, error) {
	if k <= 0 {
		return 0, fmt.Errorf("%s: k must be positive, got %d", what, k)
	}
	for i, q := range queries {
		if len(q) != dim {
			return 0, fmt.Errorf("%s: query %d has %d dimensions, the index %d", what, i, len(q), dim)
		}
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return workers, nil
}

// scoreTileGo sets scores[qi·densePassageBlock + j] to the inner product of
// query qi and row j of block (w rows of dim floats): four queries × two
// rows at a time, in pure Go, each sum in index order. It is the kernel on
// every CPU without AVX2 and FMA (scoreTile chooses).
func scoreTileGo(qs [][]float32, block []float32, dim, w int, scores []float32) {
	qi := 0
	for ; qi+4 <= len(qs); qi += 4 {
		q0, q1, q2, q3 := qs[qi], qs[qi+1], qs[qi+2], qs[qi+3]
		r0 := scores[qi*densePassageBlock:]
		r1 := scores[(qi+1)*densePassageBlock:]
		r2 := scores[(qi+2)*densePassageBlock:]
		r3 := scores[(qi+3)*densePassageBlock:]
		j := 0
		for ; j+2 <= w; j += 2 {
			s := dot4x2(q0, q1, q2, q3, block[j*dim:(j+1)*dim], block[(j+1)*dim:(j+2)*dim])
			r0[j], r0[j+1] = s[0], s[1]
			r1[j], r1[j+1] = s[2], s[3]
			r2[j], r2[j+1] = s[4], s[5]
			r3[j], r3[j+1] = s[6], s[7]
		}
		for ; j < w; j++ {
			p := block[j*dim : (j+1)*dim]
			r0[j], r1[j], r2[j], r3[j] = dot(q0, p), dot(q1, p), dot(q2, p), dot(q3, p)
		}
	}
	for ; qi < len(qs); qi++ {
		r := scores[qi*densePassageBlock:]
		for j := 0; j < w; j++ {
			r[j] = dot(qs[qi], block[j*dim:(j+1)*dim])
		}
	}
}

// push, pop and down are container/heap's algorithms without the interface
// calls (the dense scan offers every passage to the heap).
func (h *hitHeap) push(e scored) {
	*h = append(*h, e)
	s := *h
	for i := len(s) - 1; i > 0; {
		parent := (i - 1) / 2
		if !better(s[parent], s[i]) {
			break
		}
		s[parent], s[i] = s[i], s[parent]
		i = parent
	}
}

func (h *hitHeap) pop() scored {
	s := *h
	top := s[0]
	s[0] = s[len(s)-1]
	*h = s[:len(s)-1]
	h.down(0)
	return top
}

func (h hitHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && better(h[l], h[r]) {
			m = r
		}
		if !better(h[i], h[m]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// dot is the inner product of two equal-length vectors, summed in index
// order as dot4x2 sums, so a passage scores the same in either path and
// duplicates tie exactly.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s float32
	for i, x := range a {
		s += x * b[i]
	}
	return s
}

// dot4x2 scores four queries against two passages: eight accumulators held
// in registers, six loads per eight multiply-adds.
func dot4x2(q0, q1, q2, q3, p0, p1 []float32) [8]float32 {
	n := len(p0)
	q0, q1, q2, q3, p1 = q0[:n], q1[:n], q2[:n], q3[:n], p1[:n]
	var s00, s01, s10, s11, s20, s21, s30, s31 float32
	for i := 0; i < n; i++ {
		a, b := p0[i], p1[i]
		x0, x1, x2, x3 := q0[i], q1[i], q2[i], q3[i]
		s00 += x0 * a
		s01 += x0 * b
		s10 += x1 * a
		s11 += x1 * b
		s20 += x2 * a
		s21 += x2 * b
		s30 += x3 * a
		s31 += x3 * b
	}
	return [8]float32{s00, s01, s10, s11, s20, s21, s30, s31}
}
