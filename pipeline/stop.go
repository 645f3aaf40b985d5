package pipeline

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Stopper is a graceful stop in two steps. The first Stop ends Soft: no new
// work is taken (stages stop handing out items; requests not yet sent are
// not sent), while requests in flight go on under Hard, so that the
// answers the user pays for are stored. Hard ends Grace later, or at the
// second Stop, abandoning whatever is still in flight.
type Stopper struct {
	Soft, Hard             context.Context
	cancelSoft, cancelHard context.CancelFunc
	mu                     sync.Mutex
	grace                  time.Duration
	stops                  int
}

type stopperKey struct{}

// NewStopper returns a Stopper under parent, with a grace of 30 s until
// SetGrace says otherwise.
func NewStopper(parent context.Context) *Stopper {
	hard, ch := context.WithCancel(parent)
	soft, cs := context.WithCancel(hard)
	s := &Stopper{Hard: hard, Soft: soft, cancelSoft: cs, cancelHard: ch, grace: 30 * time.Second}
	s.Hard = context.WithValue(hard, stopperKey{}, s)
	return s
}

// StopperFrom returns the Stopper whose Hard context ctx descends from, or nil.
func StopperFrom(ctx context.Context) *Stopper {
	s, _ := ctx.Value(stopperKey{}).(*Stopper)
	return s
}

// SetGrace sets how long requests in flight may run after the first Stop.
func (s *Stopper) SetGrace(d time.Duration) {
	s.mu.Lock()
	s.grace = d
	s.mu.Unlock()
}

// Stop is one signal: the first ends Soft and starts the grace period, the
// second ends Hard. It tells log what happens.
func (s *Stopper) Stop(log io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stops++
	if s.stops == 1 {
		s.cancelSoft()
		fmt.Fprintf(log, "\nsynthq: stopping: no new requests; waiting up to %s for those in flight, whose answers are stored (press Ctrl-C again to abandon them)\n", s.grace)
		grace := s.grace
		go func() {
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-t.C:
				s.cancelHard()
			case <-s.Hard.Done():
			}
		}()
		return
	}
	fmt.Fprintln(log, "\nsynthq: abandoning the requests in flight")
	s.cancelHard()
}

// Close releases the contexts.
func (s *Stopper) Close() { s.cancelHard() }

// Stopping reports whether the run was asked to stop taking new work.
func (e *Env) Stopping() bool { return e.Stop != nil && e.Stop.Err() != nil }
