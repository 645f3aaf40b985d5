package retriever

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func randVecs(r *rand.Rand, n, dim int) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
		out[i] = v
	}
	return out
}

// bruteForce scores every passage and sorts: the reference.
func bruteForce(ps [][]float32, ids []string, q []float32, k int) []Hit {
	type s struct {
		i     int
		score float32
	}
	all := make([]s, len(ps))
	for i, p := range ps {
		var x float32
		for j := range p {
			x += p[j] * q[j]
		}
		all[i] = s{i, x}
	}
	slices.SortStableFunc(all, func(a, b s) int {
		if a.score != b.score {
			if a.score > b.score {
				return -1
			}
			return 1
		}
		return a.i - b.i
	})
	var hits []Hit
	for r := 0; r < k && r < len(all); r++ {
		hits = append(hits, Hit{DocID: ids[all[r].i], Rank: r + 1, Score: all[r].score})
	}
	return hits
}

// TestDenseMatchesBruteForce: blocked top-k equals a full sort, for query
// counts that do and do not fill the 4-query kernel, passage counts across
// block edges, duplicate passages (ties go to the earlier one) and k larger
// than the corpus.
func TestDenseMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ n, dim, queries, k int }{
		{1, 8, 1, 5},
		{257, 16, 7, 10},
		{600, 33, 130, 100},
		{1000, 64, 3, 1},
	} {
		t.Run(fmt.Sprintf("n%d_dim%d_q%d_k%d", tc.n, tc.dim, tc.queries, tc.k), func(t *testing.T) {
			ps := randVecs(r, tc.n, tc.dim)
			if tc.n > 10 {
				ps[tc.n-1] = slices.Clone(ps[3]) // an exact duplicate: equal scores
			}
			ids := make([]string, tc.n)
			ix := NewDense(tc.dim)
			for i, p := range ps {
				ids[i] = fmt.Sprintf("p%d", i)
				if err := ix.Add(ids[i], p); err != nil {
					t.Fatal(err)
				}
			}
			qs := randVecs(r, tc.queries, tc.dim)
			qs[0] = slices.Clone(ps[min(3, tc.n-1)])
			got, err := ix.SearchBatch(context.Background(), qs, tc.k, 3)
			if err != nil {
				t.Fatal(err)
			}
			for qi, q := range qs {
				want := bruteForce(ps, ids, q, tc.k)
				if len(got[qi]) != len(want) {
					t.Fatalf("query %d: %d hits, want %d", qi, len(got[qi]), len(want))
				}
				for i := range want {
					g, w := got[qi][i], want[i]
					if g.DocID != w.DocID || g.Rank != w.Rank || abs32(g.Score-w.Score) > 1e-4 {
						t.Fatalf("query %d rank %d: got %+v, want %+v", qi, i+1, g, w)
					}
				}
			}
		})
	}
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

func TestDenseRejectsWrongDimensions(t *testing.T) {
	ix := NewDense(4)
	if err := ix.Add("a", []float32{1, 2, 3}); err == nil {
		t.Fatal("a 3-dim vector went into a 4-dim index")
	}
	ix.Add("b", []float32{1, 0, 0, 0})
	if _, err := ix.Search(context.Background(), []float32{1, 0}, 1); err == nil {
		t.Fatal("a 2-dim query was searched in a 4-dim index")
	}
}

// BenchmarkDenseExact100kx768 is exact top-100 over 100,000 random 768-dim
// passages for batches of 256 queries with every core. Reports queries/s,
// GFLOP/s (2·dim flops per query-passage pair) and GFLOP per CPU-second of
// the process (what a core does while busy, less sensitive to other load).
func BenchmarkDenseExact100kx768(b *testing.B) {
	const n, dim, nq = 100_000, 768, 256
	r := rand.New(rand.NewPCG(3, 4))
	ix := NewDense(dim)
	for i, v := range randVecs(r, n, dim) {
		ix.Add(fmt.Sprint(i), v)
	}
	qs := randVecs(r, nq, dim)
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; i < b.N; i++ {
		if _, err := ix.SearchBatch(context.Background(), qs, 100, 0); err != nil {
			b.Fatal(err)
		}
	}
	cpu := (processCPU() - cpu0).Seconds()
	sec := b.Elapsed().Seconds()
	flops := float64(b.N) * nq * n * dim * 2
	b.ReportMetric(float64(b.N*nq)/sec, "queries/s")
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
	if cpu > 0 {
		b.ReportMetric(flops/cpu/1e9, "GFLOP/CPU-s") // per core busy: robust to other load
	}
}

// TestAddBatchEqualsAdd: the parallel build ranks exactly as the serial one.
func TestAddBatchEqualsAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	vocab := []string{"cell", "cells", "protein", "gene", "the", "tumour", "growth", "Factor's", "receptor", "binding", "ÉCOLE", "x1", "β-catenin"}
	var ids, texts []string
	for i := 0; i < 3000; i++ {
		n := 5 + r.IntN(30)
		var ws []string
		for j := 0; j < n; j++ {
			ws = append(ws, vocab[r.IntN(len(vocab))])
		}
		ids, texts = append(ids, fmt.Sprintf("d%d", i)), append(texts, strings.Join(ws, " "))
	}
	serial := NewBM25Builder(nil, nil)
	for i := range ids {
		serial.Add(ids[i], texts[i])
	}
	par := NewBM25Builder(nil, nil)
	par.AddBatch(ids[:1000], texts[:1000], 3)
	par.AddBatch(ids[1000:], texts[1000:], 4)
	a, b := serial.Build(), par.Build()
	if a.Postings() != b.Postings() || a.Terms() != b.Terms() {
		t.Fatalf("postings %d vs %d, terms %d vs %d", a.Postings(), b.Postings(), a.Terms(), b.Terms())
	}
	for _, q := range []string{"cell growth", "protein binding receptor", "factor", "école β-catenin", "the"} {
		x, _ := a.Search(context.Background(), q, 50)
		y, _ := b.Search(context.Background(), q, 50)
		if fmt.Sprint(x) != fmt.Sprint(y) {
			t.Fatalf("%q: serial %v\nparallel %v", q, x[:3], y[:3])
		}
	}
}
