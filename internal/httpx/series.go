package httpx

import (
	"math"
	"time"
)

// maxSeriesPoints bounds an endpoint's throughput series: a run of any
// length keeps at most this many figures.
const maxSeriesPoints = 240

// series counts one endpoint's answers per step of time since its first
// request. Steps start at one second; when a run outgrows maxSeriesPoints
// steps, neighbouring steps are merged and the step doubles, so memory and
// the stored figures stay bounded (a 10-hour run keeps steps of 4 minutes).
type series struct {
	step   time.Duration
	counts []int64
}

// add counts an answer at since after the first request.
func (s *series) add(since time.Duration) {
	if s.step == 0 {
		s.step = time.Second
	}
	since = max(since, 0)
	i := int(since / s.step)
	for i >= maxSeriesPoints {
		s.merge()
		i = int(since / s.step)
	}
	for len(s.counts) <= i {
		s.counts = append(s.counts, 0)
	}
	s.counts[i]++
}

// merge sums neighbouring steps into steps twice as long.
func (s *series) merge() {
	n := (len(s.counts) + 1) / 2
	for j := 0; j < n; j++ {
		v := s.counts[2*j]
		if 2*j+1 < len(s.counts) {
			v += s.counts[2*j+1]
		}
		s.counts[j] = v
	}
	s.counts = s.counts[:n]
	s.step *= 2
}

// rates returns answers per second in each step, the last one over the
// part of it that has elapsed (elapsed: first request to last answer),
// rounded to 0.01.
func (s *series) rates(elapsed time.Duration) []float64 {
	if len(s.counts) == 0 {
		return nil
	}
	out := make([]float64, len(s.counts))
	for i, c := range s.counts {
		d := s.step.Seconds()
		if i == len(s.counts)-1 {
			if part := (elapsed - time.Duration(i)*s.step).Seconds(); part > 0 && part < d {
				d = max(part, 0.001*d)
			}
		}
		out[i] = math.Round(float64(c)/d*100) / 100
	}
	return out
}
