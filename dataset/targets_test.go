package dataset

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/synthq/synthq/pipeline"
)

func TestPercentileMatchesNumpy(t *testing.T) {
	s := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	// numpy.percentile(range(1, 11), [1, 25, 50, 99]) = 1.09, 3.25, 5.5, 9.91
	for p, want := range map[float64]float64{1: 1.09, 25: 3.25, 50: 5.5, 99: 9.91, 0: 1, 100: 10} {
		if got := percentile(s, p); math.Abs(got-want) > 1e-6 {
			t.Errorf("percentile(%v) = %v, want %v", p, got, want)
		}
	}
}

// The bounded-memory quantiles equal the sorted-array percentiles exactly,
// on value sets that stress them: ties, one value, negatives and zeros,
// values packed into one high bucket, wide ranges.
func TestQuantilesEqualSortedPercentiles(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	sets := map[string][]float32{
		"one value":   {0.25},
		"all equal":   slices.Repeat([]float32{7}, 1000),
		"neg and 0":   {-3, -0.5, 0, 0, 0.5, -1e-30, 1e-30, 2},
		"logits":      nil,
		"narrow":      nil,
		"hand (1-10)": {10, 9, 8, 7, 6, 5, 4, 3, 2, 1},
	}
	for i := 0; i < 20000; i++ {
		sets["logits"] = append(sets["logits"], float32(r.NormFloat64()*4))
		sets["narrow"] = append(sets["narrow"], 0.5+float32(r.IntN(50))*1e-6) // one high bucket, many ties
	}
	for name, vals := range sets {
		q := &quantiles{}
		for _, v := range vals {
			q.addHigh(v)
		}
		ps := []float64{0, 1, 12.5, 25, 50, 99, 99.9, 100}
		for _, p := range ps {
			q.want(p)
		}
		for _, v := range vals {
			q.addLow(v)
		}
		sorted := slices.Clone(vals)
		slices.Sort(sorted)
		for _, p := range ps {
			if got, want := q.percentile(p), percentile(sorted, p); got != want {
				t.Errorf("%s: percentile %v = %v, sorted array gives %v", name, p, got, want)
			}
		}
	}
}

// TestTargetsHandComputed checks the filters and normalisation on a store of
// four labelled lists whose expected outcome is worked out by hand.
func TestTargetsHandComputed(t *testing.T) {
	st, err := pipeline.OpenStore(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	put := func(qid string, l Labelled) {
		if err := st.PutJSON(LabelKey(qid), l); err != nil {
			t.Fatal(err)
		}
	}
	// The 12 scores sorted: 0.1 0.2 0.3 1 3 4 5 6 8 9 10 11.
	// p1 = 0.1 + 0.11·0.1 = 0.111; p25 = 0.3 + 0.75·0.7 = 0.825; p99 = 10 + 0.89·1 = 10.89.
	put("a:q:0", Labelled{DocID: "a", DocIDs: []string{"x", "a", "y"}, Ranks: []int32{1, 2, 3}, Raw: []float32{9, 11, 6}})      // source top: kept
	put("b:q:0", Labelled{DocID: "b", DocIDs: []string{"b", "x", "y"}, Ranks: []int32{1, 2, 3}, Raw: []float32{5, 10, 1}})      // x beats source: dropped
	put("c:q:0", Labelled{DocID: "c", DocIDs: []string{"c", "x", "y"}, Ranks: []int32{1, 2, 3}, Raw: []float32{0.3, 0.2, 0.1}}) // top 0.3 < p25: dropped
	put("d:q:0", Labelled{DocID: "d", DocIDs: []string{"y", "d", "z"}, Ranks: []int32{3, 1, 0}, Raw: []float32{3, 8, 4}})       // kept
	cfg := &pipeline.Config{RequireSourceTop1: true, MinTopPercentile: 25, ListSize: 2, Norm: "p1p99", DevFraction: 0.5, Seed: 3}
	tg, err := ComputeTargets(context.Background(), st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-5 }
	if tg.Scores != 12 || !near(tg.P1, 0.111) || !near(tg.P99, 10.89) || !near(tg.MinTop, 0.825) {
		t.Fatalf("targets = %+v", tg)
	}
	if tg.Kept != 2 || tg.counts["drop_"+DropSourceNotTop1] != 1 || tg.counts["drop_"+DropLowTopScore] != 1 || tg.DevSource != 1 {
		t.Fatalf("kept %d, counts %v, dev %d", tg.Kept, tg.counts, tg.DevSource)
	}
	l := Labelled{DocID: "d", DocIDs: []string{"y", "d", "z"}, Ranks: []int32{3, 1, 0}, Raw: []float32{3, 8, 4}}
	idx, drop := tg.Row(&l, cfg)
	// Sorted by score: d (8), z (4), y (3); list size 2 keeps d, z.
	if drop != "" || len(idx) != 2 || l.DocIDs[idx[0]] != "d" || l.DocIDs[idx[1]] != "z" {
		t.Fatalf("row = %v %q", idx, drop)
	}
	// (8 - 0.111) / (10.89 - 0.111) = 0.731886; (4 - 0.111) / 10.779 = 0.360794
	if got := tg.Normalise(8, cfg); !near(float64(got), 0.731886) {
		t.Errorf("normalise(8) = %v", got)
	}
	if got := tg.Normalise(4, cfg); !near(float64(got), 0.360794) {
		t.Errorf("normalise(4) = %v", got)
	}
	if got := tg.Normalise(11, cfg); got != 1 {
		t.Errorf("normalise(11) = %v, want clipped to 1", got)
	}
	if got := tg.Normalise(0, cfg); got != 0 {
		t.Errorf("normalise(0) = %v, want clipped to 0", got)
	}
	// Changing a threshold is a pure recomputation: with no percentile filter c is kept.
	cfg.MinTopPercentile = 0
	tg2, _ := ComputeTargets(context.Background(), st, cfg)
	if tg2.Kept != 3 {
		t.Errorf("without the percentile filter kept %d, want 3", tg2.Kept)
	}
	// Without requiring the source first, b is kept and its source is still in the list.
	cfg.RequireSourceTop1 = false
	cfg.ListSize = 2
	lb := Labelled{DocID: "b", DocIDs: []string{"b", "x", "y"}, Ranks: []int32{1, 2, 3}, Raw: []float32{5, 10, 1}}
	idx, _ = tg2.Row(&lb, cfg)
	if lb.DocIDs[idx[0]] != "x" || lb.DocIDs[idx[1]] != "b" {
		t.Errorf("row without source-top1 = %v", idx)
	}
}
