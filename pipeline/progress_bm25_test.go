package pipeline

import (
	"io"
	"math"
	"testing"
	"time"

	"github.com/synthq/synthq/retriever"
)

// The BM25 build's bar (stages.buildBM25: passages analysed, then the
// index's passes over the postings) keeps its ETA within 2× of the truth to
// the end, on the timeline measured at 1M passages (BENCHMARKS.md
// "Millions of passages": analysis 28.3 s, then the counting, filling and
// bounds passes 0.24, 1.30 and 0.70 s). The weights before (the passes as a
// quarter of the analysis, the bounds pass unreported) said "ETA 0s" with
// most of the last pass still to run.
func TestETABM25BuildToTheEnd(t *testing.T) {
	const n = 1_000_000
	type phase struct {
		secs  float64
		units int64 // units the bar counts for the phase, added evenly over it
	}
	build := int64(n / retriever.BM25BuildShare)
	w := [3]int64{retriever.BM25WeightCount, retriever.BM25WeightFill, retriever.BM25WeightBounds}
	sum := w[0] + w[1] + w[2]
	cases := []struct {
		name   string
		phases []phase
		within bool // the worst ratio is within 2×
	}{
		{"passes weighted by their measured costs", []phase{
			{28.3, n},
			{0.24, build * w[0] / sum},
			{1.30, build * w[1] / sum},
			{0.70, build - build*w[0]/sum - build*w[1]/sum},
		}, true},
		{"before: a quarter of the analysis, bounds unreported", []phase{
			{28.3, n},
			{0.24, n / 8},
			{1.30, n / 8},
			{0.70, 0},
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var total int64
			for _, p := range c.phases {
				total += p.units
			}
			const step = 10 * time.Millisecond
			type point struct {
				t    time.Duration
				done int64
			}
			var pts []point
			var now time.Duration
			var base int64
			for _, p := range c.phases {
				steps := int(p.secs / step.Seconds())
				for i := 1; i <= steps; i++ {
					now += step
					pts = append(pts, point{now, base + p.units*int64(i)/int64(steps)})
				}
				base += p.units
			}
			end := now
			t0 := time.Unix(1_000_000, 0)
			clock := t0
			pr := &Progress{w: io.Discard, quiet: true, now: func() time.Time { return clock }}
			b := pr.Start("bm25 index", total)
			worst, worstAt := 1.0, time.Duration(0)
			for i := 49; i < len(pts); i += 50 { // every 0.5 s, as a terminal's bar
				pt := pts[i]
				clock = t0.Add(pt.t)
				_, left, ok := b.estimate(clock, pt.done)
				truth := end - pt.t
				if pt.done < total/20 || truth < 300*time.Millisecond {
					continue
				}
				ratio := math.Inf(1) // no ETA, or 0 s, with time left
				if ok && left > 0 {
					ratio = max(left.Seconds()/truth.Seconds(), truth.Seconds()/left.Seconds())
				}
				if ratio > worst {
					worst, worstAt = ratio, pt.t
				}
			}
			t.Logf("worst ETA error %.2f× at %v of %v", worst, worstAt.Round(time.Millisecond), end.Round(time.Millisecond))
			if (worst <= 2) != c.within {
				t.Errorf("worst ETA error %.2f× at %v of %v; want within 2×: %v", worst, worstAt, end, c.within)
			}
		})
	}
}
