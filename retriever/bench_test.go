package retriever

import (
	"context"
	"path/filepath"
	"testing"
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
