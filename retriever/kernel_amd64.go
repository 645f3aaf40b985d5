//go:build amd64 && !purego

package retriever

import "golang.org/x/sys/cpu"

// fmaKernel is whether this CPU (and its OS) runs AVX2 and FMA: decided
// once at start, read-only afterwards.
var fmaKernel = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// scoreTile sets scores[qi·densePassageBlock + j] to the inner product of
// query qi and row j of block (w rows of dim floats), with the AVX2/FMA
// kernel where the CPU has it, else in pure Go. Every search and k-means
// step goes through it, so on one machine a query-passage pair always
// scores the same bits, whatever its place in a batch or the core count.
func scoreTile(qs [][]float32, block []float32, dim, w int, scores []float32) {
	if fmaKernel {
		scoreTileFMA(qs, block, dim, w, scores)
		return
	}
	scoreTileGo(qs, block, dim, w, scores)
}

//go:noescape
func dot4x3FMA(q0, q1, q2, q3, p0, p1, p2 *float32, n int, out *[12]float32)

// scoreTileFMA is scoreTile on AVX2 and FMA: four queries × three rows a
// call (twelve 8-lane accumulators; 7 loads per 12 fused multiply-adds).
// A pair's score is the kernel's sum of its first dim&^7 floats (lane-wise
// FMA, then a fixed reduction tree) plus the rest summed in index order:
// the same whatever the slot, because short tiles repeat their last query
// or row rather than switching to another code path.
func scoreTileFMA(qs [][]float32, block []float32, dim, w int, scores []float32) {
	n8 := dim &^ 7
	block = block[:w*dim]
	last := len(qs) - 1
	var out [12]float32
	for qi := 0; qi < len(qs); qi += 4 {
		nq := min(4, len(qs)-qi)
		q0, q1, q2, q3 := qs[qi], qs[min(qi+1, last)], qs[min(qi+2, last)], qs[min(qi+3, last)]
		q := [4][]float32{q0, q1, q2, q3}
		for j := 0; j < w; j += 3 {
			nr := min(3, w-j)
			j1, j2 := min(j+1, w-1), min(j+2, w-1)
			p0, p1, p2 := block[j*dim:(j+1)*dim], block[j1*dim:(j1+1)*dim], block[j2*dim:(j2+1)*dim]
			dot4x3FMA(&q0[0], &q1[0], &q2[0], &q3[0], &p0[0], &p1[0], &p2[0], n8, &out)
			if n8 < dim {
				p := [3][]float32{p0, p1, p2}
				for b := 0; b < nr; b++ {
					for a := 0; a < nq; a++ {
						out[4*b+a] += dot(q[a][n8:dim], p[b][n8:])
					}
				}
			}
			for a := 0; a < nq; a++ {
				r := scores[(qi+a)*densePassageBlock+j:]
				for b := 0; b < nr; b++ {
					r[b] = out[4*b+a]
				}
			}
		}
	}
}
