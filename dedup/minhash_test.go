package dedup

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func words(r *rand.Rand, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("w%d", r.IntN(5000))
	}
	return out
}

// jaccard is the exact Jaccard similarity of two passages' shingle sets.
func jaccard(a, b []string, k int) float64 {
	set := func(ws []string) map[string]bool {
		m := map[string]bool{}
		for s := 0; s < max(len(ws)-k+1, 1); s++ {
			m[strings.Join(ws[s:min(s+k, len(ws))], " ")] = true
		}
		return m
	}
	x, y := set(a), set(b)
	inter := 0
	for s := range x {
		if y[s] {
			inter++
		}
	}
	return float64(inter) / float64(len(x)+len(y)-inter)
}

// TestNearDuplicates: copies with a word or two changed are found, the
// earliest passage is the one kept, chains resolve to a kept passage, and
// unrelated passages or passages sharing half their text are not merged.
func TestNearDuplicates(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	base := words(r, 200)
	edit := func(ws []string, n int) []string {
		c := append([]string(nil), ws...)
		for i := 0; i < n; i++ {
			c[r.IntN(len(c))] = "changed"
		}
		return c
	}
	half := append(append([]string(nil), base[:100]...), words(r, 100)...)
	docs := [][]string{
		words(r, 200),    // 0 unrelated
		base,             // 1 kept
		edit(base, 1),    // 2 duplicate of 1 (J ~ 0.95)
		half,             // 3 half shared: kept (J ~ 0.33)
		words(r, 200),    // 4 unrelated
		edit(base, 0),    // 5 exact copy of 1
		{"short", "one"}, // 6
		{"short", "one"}, // 7 exact copy of 6
		edit(base, 40),   // 8 heavily edited: kept
	}
	f := NewFinder(Options{Threshold: 0.9, Seed: 1})
	for _, d := range docs {
		f.Add(d)
	}
	got := f.Duplicates()
	want := []int{-1, -1, 1, -1, -1, 1, -1, 6, -1}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("passage %d: duplicate of %d, want %d (exact Jaccard with 1: %.3f)", i, got[i], want[i], jaccard(docs[1], docs[i], 5))
		}
	}
	if f.Bands() != 16 {
		t.Errorf("bands at threshold 0.9 = %d, want 16 (8 rows)", f.Bands())
	}
}

// TestSimilarityEstimate: the MinHash estimate is within 0.1 of the exact
// Jaccard similarity across the range.
func TestSimilarityEstimate(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	base := words(r, 300)
	f := NewFinder(Options{Seed: 3})
	f.Add(base)
	var exact []float64
	for _, changes := range []int{0, 3, 10, 30, 100, 300} {
		c := append([]string(nil), base...)
		for i := 0; i < changes; i++ {
			c[r.IntN(len(c))] = fmt.Sprintf("x%d", i)
		}
		f.Add(c)
		exact = append(exact, jaccard(base, c, 5))
	}
	for i, j := range exact {
		if est := f.Similarity(0, i+1); est < j-0.1 || est > j+0.1 {
			t.Errorf("estimate %.3f, exact %.3f", est, j)
		}
	}
}

// TestManyCopies: a thousand copies of one boilerplate passage all resolve
// to the first, within the bucket cap.
func TestManyCopies(t *testing.T) {
	f := NewFinder(Options{})
	boiler := strings.Fields("this page intentionally left blank for the purposes of the archive record")
	for i := 0; i < 1000; i++ {
		f.Add(boiler)
	}
	for i, d := range f.Duplicates() {
		if (i == 0) != (d == -1) || (i > 0 && d != 0) {
			t.Fatalf("copy %d: duplicate of %d, want 0", i, d)
		}
	}
}

// BenchmarkNearDedup100k signs 100,000 passages of 60–120 random words
// (10% of them edited copies of earlier ones) and resolves duplicates.
// Reports passages/s over both phases.
func BenchmarkNearDedup100k(b *testing.B) {
	const n = 100_000
	r := rand.New(rand.NewPCG(11, 12))
	docs := make([][]string, n)
	for i := range docs {
		if i > 0 && i%10 == 0 {
			c := append([]string(nil), docs[r.IntN(i)]...)
			c[r.IntN(len(c))] = "edited"
			docs[i] = c
			continue
		}
		docs[i] = words(r, 60+r.IntN(61))
	}
	b.ResetTimer()
	dups := 0
	for i := 0; i < b.N; i++ {
		f := NewFinder(Options{Seed: 1})
		for _, d := range docs {
			f.Add(d)
		}
		dups = 0
		for _, d := range f.Duplicates() {
			if d >= 0 {
				dups++
			}
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "passages/s")
	b.ReportMetric(float64(dups), "duplicates")
}
