package retriever

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// tileScores runs a tile kernel on qs × rows and returns scores[q][r].
func tileScores(kernel func([][]float32, []float32, int, int, []float32), qs [][]float32, rows [][]float32) [][]float32 {
	dim := len(qs[0])
	block := make([]float32, 0, len(rows)*dim)
	for _, r := range rows {
		block = append(block, r...)
	}
	scores := make([]float32, len(qs)*densePassageBlock)
	kernel(qs, block, dim, len(rows), scores)
	out := make([][]float32, len(qs))
	for i := range qs {
		out[i] = scores[i*densePassageBlock : i*densePassageBlock+len(rows)]
	}
	return out
}

// exactDot is the inner product in float64: the reference both kernels
// are held to.
func exactDot(a, b []float32) (sum, mag float64) {
	for i := range a {
		x := float64(a[i]) * float64(b[i])
		sum += x
		mag += math.Abs(x)
	}
	return sum, mag
}

// TestKernelsAgree: the pure-Go kernel and the kernel this CPU runs
// (AVX2/FMA where present) score random data within float32 rounding of
// the float64 sum, for odd dimensions (not multiples of 8, shorter than a
// vector register) and for query and row counts that do not fill a tile.
// Runs on every architecture: without AVX2/FMA both sides are the Go
// kernel.
func TestKernelsAgree(t *testing.T) {
	if !fmaKernel {
		t.Log("no AVX2/FMA kernel (this CPU, this architecture or the purego tag): scoreTile is the pure-Go kernel")
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, dim := range []int{1, 3, 7, 8, 9, 15, 16, 17, 31, 64, 100, 256, 768, 1024} {
		for _, c := range []struct{ queries, rows int }{{1, 1}, {3, 2}, {4, 3}, {5, 4}, {9, 7}, {13, 256}} {
			t.Run(fmt.Sprintf("dim%d_q%d_r%d", dim, c.queries, c.rows), func(t *testing.T) {
				qs, rows := randVecs(r, c.queries, dim), randVecs(r, c.rows, dim)
				got, ref := tileScores(scoreTile, qs, rows), tileScores(scoreTileGo, qs, rows)
				for i := range qs {
					for j := range rows {
						want, mag := exactDot(qs[i], rows[j])
						tol := 4 * float64(dim) * 0x1p-24 * mag // float32 summation error bound, loose
						if d := math.Abs(float64(got[i][j]) - want); d > tol {
							t.Fatalf("kernel: query %d row %d: %g, float64 sum %g (off by %g > %g)", i, j, got[i][j], want, d, tol)
						}
						if d := math.Abs(float64(ref[i][j]) - want); d > tol {
							t.Fatalf("pure Go: query %d row %d: %g, float64 sum %g (off by %g > %g)", i, j, ref[i][j], want, d, tol)
						}
					}
				}
			})
		}
	}
}

// TestKernelSlotIndependent: a query-passage pair scores the same bits
// whatever its place in a tile (first or last query of four, first or
// last row of three, a short tile at the end of a block), so exact and IVF
// search, which batch differently, rank duplicates and ties identically.
func TestKernelSlotIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, dim := range []int{5, 8, 13, 768} {
		qs, rows := randVecs(r, 11, dim), randVecs(r, 10, dim)
		all := tileScores(scoreTile, qs, rows)
		for i := range qs {
			for j := range rows {
				one := tileScores(scoreTile, qs[i:i+1], rows[j:j+1])[0][0]
				// The pair again, at other slots among other vectors.
				moved := tileScores(scoreTile, [][]float32{qs[(i+1)%11], qs[(i+2)%11], qs[i]}, [][]float32{rows[(j+1)%10], rows[j]})[2][1]
				if math.Float32bits(one) != math.Float32bits(all[i][j]) || math.Float32bits(moved) != math.Float32bits(all[i][j]) {
					t.Fatalf("dim %d query %d row %d: %v in a full tile, %v alone, %v moved", dim, i, j, all[i][j], one, moved)
				}
			}
		}
	}
}

// FuzzKernels: any dimension and counts, both kernels within rounding of
// the float64 sum.
func FuzzKernels(f *testing.F) {
	f.Add(uint64(1), uint8(9), uint8(5), uint8(7))
	f.Add(uint64(2), uint8(1), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, seed uint64, dim, nq, nr uint8) {
		if dim == 0 || nq == 0 || nr == 0 {
			return
		}
		r := rand.New(rand.NewPCG(seed, 1))
		qs, rows := randVecs(r, int(nq%16)+1, int(dim)), randVecs(r, int(nr), int(dim))
		got, ref := tileScores(scoreTile, qs, rows), tileScores(scoreTileGo, qs, rows)
		for i := range qs {
			for j := range rows {
				want, mag := exactDot(qs[i], rows[j])
				tol := 4 * float64(dim) * 0x1p-24 * mag
				if math.Abs(float64(got[i][j])-want) > tol || math.Abs(float64(ref[i][j])-want) > tol {
					t.Fatalf("dim %d query %d row %d: kernel %g, Go %g, float64 %g", dim, i, j, got[i][j], ref[i][j], want)
				}
			}
		}
	})
}
