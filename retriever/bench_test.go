package retriever

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkBM25SearchSciFact measures top-100 BM25 search over SciFact on one
// goroutine, cycling through its 1,109 queries. Reports queries/s.
func BenchmarkBM25SearchSciFact(b *testing.B) {
	dir := sciFactDir(b)
	ix := buildSciFact(b, dir)
	qs := readJSONL[beirDoc](b, filepath.Join(dir, "queries.jsonl"))
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ix.Search(ctx, qs[i%len(qs)].Text, 100); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}

// BenchmarkBM25BuildSciFact measures index construction (analysis included)
// over SciFact's 5,183 passages. Reports passages/s and bytes per posting.
func BenchmarkBM25BuildSciFact(b *testing.B) {
	dir := sciFactDir(b)
	docs := readJSONL[beirDoc](b, filepath.Join(dir, "corpus.jsonl"))
	b.ResetTimer()
	var ix *BM25
	for i := 0; i < b.N; i++ {
		bl := NewBM25Builder(nil, nil)
		for _, d := range docs {
			bl.Add(d.ID, d.Title+" "+d.Text)
		}
		ix = bl.Build()
	}
	b.ReportMetric(float64(b.N*len(docs))/b.Elapsed().Seconds(), "passages/s")
	b.ReportMetric(float64(ix.Postings()), "postings")
}

// BenchmarkBM25BuildSciFactParallel is the same build through AddBatch,
// analysing on every core.
func BenchmarkBM25BuildSciFactParallel(b *testing.B) {
	dir := sciFactDir(b)
	docs := readJSONL[beirDoc](b, filepath.Join(dir, "corpus.jsonl"))
	ids, texts := make([]string, len(docs)), make([]string, len(docs))
	for i, d := range docs {
		ids[i], texts[i] = d.ID, d.Title+" "+d.Text
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bl := NewBM25Builder(nil, nil)
		bl.AddBatch(ids, texts, 0)
		bl.Build()
	}
	b.ReportMetric(float64(b.N*len(docs))/b.Elapsed().Seconds(), "passages/s")
}

// zipfCorpus makes n passages of 60–120 words drawn from a Zipf(1.1)
// vocabulary of 100,000 lower-case words with English-like suffixes (so
// the Porter stemmer has work), seeded; and 1,000 queries of 4–12 words
// drawn the same way. As in English, the 33 most frequent words are the
// stopwords, which the analyzer drops.
func zipfCorpus(n int) (ids, texts, queries []string) {
	r, vocab, z := zipfVocab()
	sentence := func(m int) string {
		var sb strings.Builder
		for j := 0; j < m; j++ {
			if j > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(vocab[z.Uint64()])
		}
		return sb.String()
	}
	ids, texts = make([]string, n), make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("p%07d", i)
		texts[i] = sentence(60 + r.IntN(61))
	}
	for i := 0; i < 1000; i++ {
		queries = append(queries, sentence(4+r.IntN(9)))
	}
	return ids, texts, queries
}

// zipfVocab is zipfCorpus's seeded generator, vocabulary (stopwords
// first) and Zipf(1.1) draw over it.
func zipfVocab() (*rand.Rand, []string, *rand.Zipf) {
	r := rand.New(rand.NewPCG(42, 7))
	const v = 100_000
	z := rand.NewZipf(r, 1.1, 2, v-1)
	suffixes := []string{"", "", "", "s", "ed", "ing", "ation", "ness", "ly", "er"}
	vocab := make([]string, v)
	for i := range vocab {
		b := make([]byte, 3+r.IntN(6))
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		vocab[i] = string(b) + suffixes[r.IntN(len(suffixes))]
	}
	copy(vocab, englishStopwords[:])
	return r, vocab, z
}

// burstyCorpus is zipfCorpus with the statistics of real text where
// zipfCorpus has none: passage lengths log-normal (median 90 words, σ 0.4,
// 20 to 600; 57 indexed terms on average, as zipfCorpus's 53) and words
// that recur within a passage (each word after the first content word is,
// with probability 0.35, one the passage already used, drawn from those:
// a Pólya urn, so a passage's own words come back). Calibrated on SciFact
// (abstracts): indexed lengths' coefficient of variation 0.41 (SciFact 0.41,
// zipfCorpus 0.21), postings with tf 1 72 % (SciFact 71 %, zipfCorpus 98 %),
// a term's bound over its median contribution 1.71 (SciFact 1.61,
// zipfCorpus 1.31) at the median term. The queries are zipfCorpus's kind:
// 1,000 of 4–12 words drawn from the vocabulary.
func burstyCorpus(n int) (ids, texts, queries []string) {
	r, vocab, z := zipfVocab()
	ids, texts = make([]string, n), make([]string, n)
	var used []uint64
	for i := range ids {
		ids[i] = fmt.Sprintf("p%07d", i)
		m := min(max(int(math.Round(90*math.Exp(0.4*r.NormFloat64()))), 20), 600)
		used = used[:0]
		var sb strings.Builder
		for j := 0; j < m; j++ {
			w := z.Uint64()
			stop := w < uint64(len(englishStopwords))
			if !stop && len(used) > 0 && r.Float64() < 0.35 {
				w = used[r.IntN(len(used))]
			}
			if !stop {
				used = append(used, w)
			}
			if j > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(vocab[w])
		}
		texts[i] = sb.String()
	}
	for i := 0; i < 1000; i++ {
		var sb strings.Builder
		for j := 4 + r.IntN(9); j > 0; j-- {
			if sb.Len() > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(vocab[z.Uint64()])
		}
		queries = append(queries, sb.String())
	}
	return ids, texts, queries
}

// BenchmarkBM25Synthetic is BM25 over a generated corpus of
// SYNTHQ_BM25_PASSAGES passages (default 100,000; the BENCHMARKS.md figure
// uses 1,000,000), zipfCorpus's or, with SYNTHQ_BM25_CORPUS=bursty,
// burstyCorpus's: parallel build (passages/s), memory per posting and heap
// after the build, and top-100 search on one goroutine (queries/s, pruned by
// MaxScore; exhaustive_queries/s scores every posting of the same queries). Run
// under /usr/bin/time -v for the peak RSS.
func BenchmarkBM25Synthetic(b *testing.B) {
	n := 100_000
	if s := os.Getenv("SYNTHQ_BM25_PASSAGES"); s != "" {
		fmt.Sscan(s, &n)
	}
	ix, queries, build, heap := syntheticIndex(b, n)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ix.Search(ctx, queries[i%len(queries)], 100); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
	b.StopTimer()
	// The same queries both ways, alternating rounds, so a loaded machine
	// weighs on both alike: the ratio is the figure to trust. CPU time is
	// the thread's own (the goroutine is locked to it), less sensitive to
	// other processes than wall time.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var pruned, exhaustive, prunedCPU, exhaustiveCPU time.Duration
	for round := 0; round < 3; round++ {
		t0, c0 := time.Now(), threadCPU()
		for _, q := range queries {
			ix.Search(ctx, q, 100)
		}
		t1, c1 := time.Now(), threadCPU()
		for _, q := range queries {
			ix.searchExhaustive(q, 100)
		}
		pruned += t1.Sub(t0)
		exhaustive += time.Since(t1)
		prunedCPU += c1 - c0
		exhaustiveCPU += threadCPU() - c1
	}
	b.ReportMetric(float64(prunedCPU.Microseconds())/float64(3*len(queries)), "cpu_us/query")
	b.ReportMetric(float64(exhaustiveCPU.Microseconds())/float64(3*len(queries)), "exhaustive_cpu_us/query")
	b.ReportMetric(float64(3*len(queries))/exhaustive.Seconds(), "exhaustive_queries/s")
	b.ReportMetric(exhaustive.Seconds()/pruned.Seconds(), "speedup")
	b.ReportMetric(exhaustiveCPU.Seconds()/prunedCPU.Seconds(), "cpu_speedup")
	if build > 0 {
		b.ReportMetric(float64(n)/build.Seconds(), "build_passages/s")
		b.ReportMetric(build.Seconds(), "build_s")
		b.ReportMetric(float64(heap)/float64(ix.Postings()), "index_bytes/posting")
		b.ReportMetric(float64(heap)/1e6, "index_MB")
	}
	b.ReportMetric(float64(ix.Postings()), "postings")
}

// syntheticIndex builds the BM25 index of the synthetic corpus (see
// BenchmarkBM25Synthetic) of n passages and returns it with
// the corpus's queries, the build's wall time and the heap it added. With
// SYNTHQ_BM25_INDEX=path, an index file there (and its queries in
// path.queries) is opened instead, or written after the build for the
// next run (build time and heap are then 0): profiling search at 1M
// passages need not rebuild the index each time.
func syntheticIndex(b *testing.B, n int) (*BM25, []string, time.Duration, uint64) {
	cache := os.Getenv("SYNTHQ_BM25_INDEX")
	gen, name := zipfCorpus, "zipfCorpus"
	if os.Getenv("SYNTHQ_BM25_CORPUS") == "bursty" {
		gen, name = burstyCorpus, "burstyCorpus"
	}
	fp := map[string]string{"corpus": fmt.Sprintf("%s(%d)", name, n)}
	if cache != "" {
		if qb, err := os.ReadFile(cache + ".queries"); err == nil {
			t0 := time.Now()
			if ix, err := OpenBM25(cache, nil, nil, fp); err == nil {
				open := time.Since(t0)
				b.Cleanup(func() {
					// Reported at the end: ResetTimer drops earlier metrics.
					b.ReportMetric(open.Seconds(), "open_s")
					if fi, err := os.Stat(cache); err == nil {
						b.ReportMetric(float64(fi.Size())/1e6, "file_MB")
					}
					ix.Close()
				})
				return ix, strings.Split(string(qb), "\n"), 0, 0
			}
		}
	}
	ids, texts, queries := gen(n)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	bl := NewBM25Builder(nil, nil)
	const chunk = 16384
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		bl.AddBatch(ids[lo:hi], texts[lo:hi], 0)
	}
	ix := bl.Build()
	build := time.Since(start)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(texts)
	if cache != "" {
		if err := ix.WriteFile(cache, fp); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(cache+".queries", []byte(strings.Join(queries, "\n")), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return ix, queries, build, after.HeapAlloc - before.HeapAlloc
}

// BenchmarkBM25SearchSciFactExhaustive is BenchmarkBM25SearchSciFact
// without pruning: every posting of every query term scored.
func BenchmarkBM25SearchSciFactExhaustive(b *testing.B) {
	dir := sciFactDir(b)
	ix := buildSciFact(b, dir)
	qs := readJSONL[beirDoc](b, filepath.Join(dir, "queries.jsonl"))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ix.searchExhaustive(qs[i%len(qs)].Text, 100)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}
