package httpx

import (
	"slices"
	"testing"
	"time"
)

func TestSeries(t *testing.T) {
	sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	for _, tc := range []struct {
		name    string
		at      []float64 // answer times, seconds after the first request
		elapsed float64
		step    float64
		rates   []float64
	}{
		{"one a second", []float64{0.1, 1.1, 2.1}, 2.5, 1, []float64{1, 1, 2}}, // the last step: 1 answer in 0.5 s
		{"a gap", []float64{0.5, 0.6, 3.2}, 4, 1, []float64{2, 0, 0, 1}},
		{"full last step", []float64{0.5, 1.5}, 2, 1, []float64{1, 1}},
		// 240 steps of one second hold 240 s; an answer at 240 s merges
		// them into 120 steps of 2 s, and it lands in step 120.
		{"merged", []float64{0.5, 1.5, 239.5, 240.5}, 241, 2, append(append([]float64{1}, make([]float64, 118)...), 0.5, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s series
			for _, a := range tc.at {
				s.add(sec(a))
			}
			if s.step != sec(tc.step) {
				t.Errorf("step %s, want %gs", s.step, tc.step)
			}
			if got := s.rates(sec(tc.elapsed)); !slices.Equal(got, tc.rates) {
				t.Errorf("rates %v, want %v", got, tc.rates)
			}
		})
	}
	// Bounded whatever the run's length: a day of one answer a second.
	var s series
	for i := 0; i < 86400; i++ {
		s.add(time.Duration(i) * time.Second)
	}
	if n := len(s.counts); n > maxSeriesPoints {
		t.Errorf("%d points after a day, want ≤ %d", n, maxSeriesPoints)
	}
	var total int64
	for _, c := range s.counts {
		total += c
	}
	if total != 86400 {
		t.Errorf("merged steps count %d answers, want 86400", total)
	}
}
