package retriever

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synthq/synthq/embed"
	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/internal/synthcorpus"
)

func envInt(name string, def int) int {
	if s := os.Getenv(name); s != "" {
		fmt.Sscan(s, &def)
	}
	return def
}

// BenchmarkIVFSynthetic is approximate dense search as mining uses it:
// SYNTHQ_IVF_PASSAGES passages (default 100,000) of the synthetic topical
// corpus embedded by the fake embedder (hashed bag of words,
// SYNTHQ_IVF_DIM dimensions, default 256), an IVF index built with the
// defaults, and SYNTHQ_IVF_QUERIES queries (default 2,000; words of a
// passage) searched for their top 100 with the default probe and exactly.
// Reports build seconds (wall and CPU), queries/s both ways, CPU-minutes
// per 100k queries and recall@100 against exact. SYNTHQ_IVF_SWEEP
// (comma-separated probes) prints recall and rates for each.
// SYNTHQ_IVF_PROBE overrides the probe.
func BenchmarkIVFSynthetic(b *testing.B) {
	n := envInt("SYNTHQ_IVF_PASSAGES", 100_000)
	dim := envInt("SYNTHQ_IVF_DIM", 256)
	nq := envInt("SYNTHQ_IVF_QUERIES", 2000)
	probe := envInt("SYNTHQ_IVF_PROBE", 0)
	topics := envInt("SYNTHQ_IVF_TOPICS", max(n/500, 1))
	g := synthcorpus.New(synthcorpus.Options{N: n, Vocab: 100_000, Topics: topics, Copies: 0.02, Seed: 1})
	fe := &fakes.Embedder{Dim: dim, Scale: 1}
	dir := b.TempDir()
	w, err := NewIVFWriter(dir+"/dense.ivf", dim)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	const chunk = 8192
	vecs := make([][]float32, chunk)
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		var wg sync.WaitGroup
		per := (hi - lo + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
		for a := lo; a < hi; a += per {
			wg.Add(1)
			go func(a, z int) {
				defer wg.Done()
				for i := a; i < z; i++ {
					title, text := g.Passage(i)
					v := fe.Vector("passage: " + title + " " + text)
					embed.Normalize(v)
					vecs[i-lo] = v
				}
			}(a, min(a+per, hi))
		}
		wg.Wait()
		for i := lo; i < hi; i++ {
			if err := w.Add(synthcorpus.ID(i), vecs[i-lo]); err != nil {
				b.Fatal(err)
			}
		}
	}
	embedded := time.Since(start)
	start, cpu0 := time.Now(), processCPU()
	ix, err := w.Build(context.Background(), IVFParams{Seed: 1}, "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	build, buildCPU := time.Since(start), processCPU()-cpu0
	qs := make([][]float32, nq)
	for i := range qs {
		v := fe.Vector("query: " + g.Query((i*7919)%n))
		embed.Normalize(v)
		qs[i] = v
	}
	ctx := context.Background()
	b.ResetTimer()
	cpu0 = processCPU()
	var approx [][]Hit
	for i := 0; i < b.N; i++ {
		if approx, err = ix.SearchBatch(ctx, qs, 100, probe, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	searchCPU := processCPU() - cpu0
	approxRate := float64(b.N*nq) / b.Elapsed().Seconds()
	ne := min(nq, 1000) // exact on a part: it is slow at 1M
	start = time.Now()
	exact, err := ix.SearchBatch(ctx, qs[:ne], 100, ix.Lists(), 0)
	if err != nil {
		b.Fatal(err)
	}
	exactRate := float64(ne) / time.Since(start).Seconds()
	b.ReportMetric(approxRate, "queries/s")
	b.ReportMetric(exactRate, "exact_queries/s")
	b.ReportMetric(RecallAt(100, approx[:ne], exact), "recall@100")
	b.ReportMetric(build.Seconds(), "build_s")
	b.ReportMetric(buildCPU.Seconds(), "build_cpu_s")
	b.ReportMetric(searchCPU.Seconds()/float64(b.N*nq)*1e5/60, "cpu_min/100k_queries")
	b.ReportMetric(embedded.Seconds(), "embed_s")
	b.ReportMetric(float64(ix.Lists()), "lists")
	if s := os.Getenv("SYNTHQ_IVF_SWEEP"); s != "" { // probe sweep: recall and rate
		var ps []int
		for _, f := range strings.Split(s, ",") {
			var p int
			fmt.Sscan(f, &p)
			ps = append(ps, p)
		}
		for _, p := range ps {
			t0, c0 := time.Now(), processCPU()
			got, _ := ix.SearchBatch(ctx, qs, 100, p, 0)
			fmt.Printf("probe %d of %d: recall@100 %.4f, %.0f queries/s, %.1f CPU-minutes for 100k queries\n", p, ix.Lists(),
				RecallAt(100, got[:ne], exact), float64(nq)/time.Since(t0).Seconds(), (processCPU()-c0).Seconds()/float64(nq)*1e5/60)
		}
	}
}
