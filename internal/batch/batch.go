// Package batch sends a client's inputs to a server in batches, the one
// way the embedder and the teachers do it: a batch the server refuses as
// too large is halved (and the smaller size kept for later calls); a batch
// refused for its content is halved again and again to isolate the refused
// inputs, so that one bad input fails alone and the rest are served.
package batch

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/internal/window"
)

// Size is a client's batch size: it only shrinks, when a server refuses a
// batch as too large. Safe for concurrent use.
type Size struct{ n atomic.Int64 }

// NewSize returns a batch size of n (at least 1).
func NewSize(n int) *Size {
	s := &Size{}
	s.n.Store(int64(max(n, 1)))
	return s
}

// Load is the current batch size.
func (s *Size) Load() int { return int(s.n.Load()) }

// shrink lowers the size to n unless another call already made it smaller.
func (s *Size) shrink(n int) {
	for {
		cur := s.n.Load()
		if cur <= int64(n) || s.n.CompareAndSwap(cur, int64(n)) {
			return
		}
	}
}

// Send sends inputs [lo, hi) in one request and stores their results.
type Send func(lo, hi int) error

// Alone is called with an input the server refused on its own and the
// server's words. It may try again (a client cuts a too-long input again
// and resends it) and returns "" when the input was then served, or the
// words to report it refused with; err is for what is not the input's.
type Alone func(i int, msg string) (string, error)

// Run sends inputs [0, n) in consecutive batches of at most size.Load(),
// in order. A batch refused as too large (an *httpx.Fault for which
// httpx.BatchTooLarge holds) is halved, the size kept for later batches and
// calls, and sent again from the same start. A batch refused for its content
// (an *httpx.Fault of kind httpx.Item) is split in two halves, each sent in
// turn and split again while refused, until each refused input stands
// alone; alone then decides. refused maps each input still refused to the
// server's words. err is any other failure (Config and Endpoint faults,
// transport errors, a batch of one refused as too large): the call stops.
// Cost: one request per batch, plus about 2·log2(batch) per refused input.
func Run(n int, size *Size, send Send, alone Alone) (refused map[int]string, err error) {
	r := &runner{size: size, send: send, alone: alone, refused: map[int]string{}}
	for i := 0; i < n; {
		end := min(i+size.Load(), n)
		if err := r.sendRange(i, end); err != nil {
			var tl tooLarge
			if errors.As(err, &tl) {
				continue // the size shrank; same start
			}
			return nil, err
		}
		i = end
	}
	return r.refused, nil
}

type runner struct {
	size    *Size
	send    Send
	alone   Alone
	refused map[int]string
}

// tooLarge reports that the server refused a batch as too large.
type tooLarge struct{ error }

// sendRange sends [lo, hi), isolating refused inputs.
func (r *runner) sendRange(lo, hi int) error {
	err := r.send(lo, hi)
	var f *httpx.Fault
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &f):
		return err
	case httpx.BatchTooLarge(f.Status, f.Msg):
		if hi-lo == 1 {
			return err
		}
		r.size.shrink(max((hi-lo)/2, 1))
		return tooLarge{err}
	case f.Kind != httpx.Item:
		return err
	case hi-lo == 1:
		msg, err := r.alone(lo, f.Msg)
		if err != nil {
			return err
		}
		if msg != "" {
			r.refused[lo] = msg
		}
		return nil
	}
	mid := (lo + hi) / 2
	if err := r.sendRange(lo, mid); err != nil {
		return err
	}
	return r.sendRange(mid, hi)
}

// Again is the Alone of a client that cuts its inputs to a window: an input
// the server refused alone as too long (httpx.TooLong of msg, the server's
// words) is cut again by cut (window.Cutter.Recut from the count the
// server states; false when it cannot cut further; an error when counting
// failed) and sent alone by send, at most window.MaxRecuts times. It
// returns "" once send succeeds, or the server's last words while the input
// is still refused (or refused for another reason); err is for what is not
// the input's (a fault of another kind than Item, from send or cut).
func Again(msg string, cut func(msg string) (bool, error), send func() error) (string, error) {
	if !httpx.TooLong(msg) {
		return msg, nil
	}
	for n := 1; n <= window.MaxRecuts; n++ {
		ok, err := cut(msg)
		if err == nil && !ok {
			break
		}
		if err == nil {
			err = send()
		}
		var f *httpx.Fault
		switch {
		case err == nil:
			return "", nil
		case !errors.As(err, &f) || f.Kind != httpx.Item:
			return "", err
		case !httpx.TooLong(f.Msg):
			return f.Msg, nil
		}
		msg = fmt.Sprintf("%s (still refused after %d cut(s) to the count the server stated)", f.Msg, n)
	}
	return msg, nil
}
