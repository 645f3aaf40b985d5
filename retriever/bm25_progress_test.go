package retriever

import (
	"reflect"
	"testing"
)

// Build reports its three passes over the postings, weighted by their
// measured costs, up to 9 units a posting; the last pass (the score
// bounds) reports its progress as it goes instead of jumping to the end,
// and the index is the same as Build's.
func TestBuildProgressCountsEveryPass(t *testing.T) {
	ids, texts, _ := zipfCorpus(20_000)
	build := func() *BM25Builder {
		b := NewBM25Builder(nil, nil)
		b.AddBatch(ids, texts, 0)
		return b
	}
	b := build()
	postings := int64(len(b.docTerms))
	var reports [][2]int64
	ix := b.BuildProgress(func(done, total int64) { reports = append(reports, [2]int64{done, total}) })
	total := (BM25WeightCount + BM25WeightFill + BM25WeightBounds) * postings
	if len(reports) == 0 || reports[len(reports)-1] != [2]int64{total, total} {
		t.Fatalf("last report %v, want %d of %d", reports[len(reports)-1:], total, total)
	}
	boundsFrom := (BM25WeightCount + BM25WeightFill) * postings
	inBounds := 0
	for i, r := range reports {
		if r[1] != total {
			t.Fatalf("report %d: total %d, want %d", i, r[1], total)
		}
		if i > 0 && r[0] < reports[i-1][0] {
			t.Fatalf("report %d went back: %d after %d", i, r[0], reports[i-1][0])
		}
		if r[0] > boundsFrom && r[0] < total {
			inBounds++
		}
	}
	if inBounds == 0 {
		t.Errorf("the bounds pass reported nothing between %d and %d: %v", boundsFrom, total, reports)
	}
	want := build().Build()
	if !reflect.DeepEqual(ix.rankInv, want.rankInv) || !reflect.DeepEqual(ix.inv, want.inv) || !reflect.DeepEqual(ix.docs, want.docs) {
		t.Error("BuildProgress built another index than Build")
	}
}
