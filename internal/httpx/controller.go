package httpx

import (
	"time"
)

// controller finds one endpoint's concurrency limit from what the endpoint
// does; it is a plain state machine fed with events and their times, so it
// is tested against simulated servers with no real clock.
//
// Growth: the limit starts at Initial and doubles after each measurement
// window in which completed requests per second rose by more than 10% over
// the window before ("slow start"), as long as the requests in flight
// filled the limit (on average over the window at least fullShare of it): an
// endpoint starved of work, as a teacher is while the LLM fleet is still
// warming up, tells nothing about its capacity, and such a window is not
// judged at all. The first window with no such rise ends slow start, at the
// midpoint of the last two limits (the knee lies between them); from
// then on, every probeEvery windows the limit is raised by an eighth and kept
// only if the rate rose by more than 5% (hill climbing), so a server that
// gained capacity is found again. A continuous-batching server (vLLM, TGI,
// llama.cpp -np, Ollama) gets faster with more in flight up to its batch
// limit and then only queues: the limit settles at or above that knee.
//
// Back-off: an overload answer (429 or 503 without rate-limit headers, TEI's
// "Model is overloaded") sets the limit to at most the requests that were in
// flight beside the refused one, so a slot server (TEI, Infinity) that
// refuses beyond C settles at C after one wave of refusals. A timeout cuts
// the limit by a quarter, once per round trip (answers to requests sent
// before the last cut do not cut again).
//
// A window is at least 2×limit completions (and 8), so it spans about two
// round trips at the current limit; in slow start, one round trip (limit
// completions), which halves the time to settle.
type controller struct {
	fixed   bool // a pinned limit: no growth, no back-off
	limit   int
	max     int
	seq     uint64 // requests started
	cutSeq  uint64 // seq at the last cut; answers to earlier requests don't cut again
	steady  bool   // slow start is over
	settled time.Time

	winStart  time.Time
	winDone   int
	winArea   float64   // requests in flight × seconds since winStart
	cur       int       // requests in flight now
	curSince  time.Time // when cur last changed
	lastRate  float64
	lastLimit int
	probing   bool // the current window measures a raised limit
	probeFrom int
	wins      int // windows since slow start ended

	// ceiling is the most in flight the server took beside a refusal (the
	// limit a refusal cut to): a slot server's slot count. 0: none seen,
	// or the server has taken more since.
	ceiling int
	// probeGap is the windows between probes; it doubles (up to
	// maxProbeGap) each time a probe past the ceiling is refused, so a
	// settled slot server is probed rarely, and is probeEvery again once a
	// probe past it is answered.
	probeGap int
}

const (
	probeEvery  = 8
	maxProbeGap = 128
)

// fullShare is the share of the limit that the requests in flight must fill,
// on average over a window, for the window's rate to say anything about the
// endpoint rather than about the work offered to it.
const fullShare = 0.8

func newController(initial, ceiling int, fixed bool) *controller {
	ceiling = max(ceiling, 1)
	initial = min(max(initial, 1), ceiling)
	return &controller{fixed: fixed, limit: initial, max: ceiling, probeGap: probeEvery}
}

// started records a request sent at now with inFlight requests now in
// flight (itself included) and returns its sequence stamp.
func (c *controller) started(inFlight int, now time.Time) uint64 {
	c.seq++
	c.track(inFlight, now)
	return c.seq
}

// track records that inFlight requests are in flight from now on; it is
// called on every change, before the event that caused it is judged.
func (c *controller) track(inFlight int, now time.Time) {
	if !c.curSince.IsZero() && now.After(c.curSince) {
		c.winArea += float64(c.cur) * now.Sub(c.curSince).Seconds()
	}
	c.cur, c.curSince = inFlight, now
}

// succeeded records a completed request at time now.
func (c *controller) succeeded(now time.Time) {
	if c.fixed {
		return
	}
	if c.winStart.IsZero() {
		c.winStart, c.winArea = now, 0
		return
	}
	c.winDone++
	need := max(2*c.limit, 8)
	if !c.steady {
		need = max(c.limit, 8) // slow start: one round trip a window, to settle sooner
	}
	if c.winDone < need {
		return
	}
	el := now.Sub(c.winStart).Seconds()
	rate, full := 0.0, false
	if el > 0 {
		rate = float64(c.winDone) / el
		full = c.winArea/el >= fullShare*float64(c.limit)
	}
	c.window(rate, full, now)
	c.winStart, c.winDone, c.winArea = now, 0, 0
}

// window ends a measurement window with its rate; full says the requests in
// flight filled the limit during it.
func (c *controller) window(rate float64, full bool, now time.Time) {
	switch {
	case !c.steady:
		if !full {
			return // not enough work to tell; measure again
		}
		if c.lastRate == 0 || rate > c.lastRate*1.10 {
			c.lastRate, c.lastLimit = rate, c.limit
			if c.limit >= c.max {
				c.endSlowStart(now)
				return
			}
			c.limit = min(2*c.limit, c.max)
			return
		}
		// Doubling bought little: the knee lies between the last two
		// limits. Settle between them (hill climbing refines it), so a
		// batching server is full without a long queue in front of it.
		c.limit = (c.lastLimit + c.limit + 1) / 2
		c.endSlowStart(now)
	case c.probing:
		if !full {
			return // the raised limit was not used: measure again
		}
		c.probing = false
		if rate > c.lastRate*1.05 {
			c.lastRate, c.lastLimit = rate, c.limit
			if c.ceiling > 0 && c.limit > c.ceiling {
				c.ceiling, c.probeGap = 0, probeEvery // the server took more: capacity grew
			}
			return
		}
		c.limit = c.probeFrom
	default:
		// Track the current rate (servers drift) with some smoothing.
		if full {
			c.lastRate = 0.5*c.lastRate + 0.5*rate
		}
		c.wins++
		if c.wins >= c.probeGap && full && c.limit < c.max {
			c.wins = 0
			c.probing, c.probeFrom = true, c.limit
			step := max(1, c.limit/8)
			if c.ceiling > 0 && c.limit+step > c.ceiling {
				// Past a ceiling the server refused at: one more at a
				// time, so a refused probe costs one refusal, not an
				// eighth of the limit.
				step = max(1, c.ceiling+1-c.limit)
			}
			c.limit = min(c.limit+step, c.max)
		}
	}
}

func (c *controller) endSlowStart(now time.Time) {
	c.steady = true
	c.settled = now
}

// overloaded records an overload answer to the request stamped seq, seen
// while inFlight requests (itself included) were in flight.
func (c *controller) overloaded(seq uint64, inFlight int, now time.Time) {
	if c.fixed {
		return
	}
	l := max(inFlight-1, 1)
	if c.probing && c.ceiling > 0 && l >= c.ceiling {
		// A probe past the ceiling refused again: probe more rarely.
		c.probeGap = min(2*c.probeGap, maxProbeGap)
	}
	if l < c.limit {
		c.limit = l
	}
	if c.steady || c.ceiling == 0 {
		c.ceiling = l
	}
	c.afterCut(now)
}

// timedOut records a request stamped seq that got no answer in time.
func (c *controller) timedOut(seq uint64, now time.Time) {
	if c.fixed || seq <= c.cutSeq {
		return
	}
	c.limit = max(1, c.limit*3/4)
	c.cutSeq = c.seq
	c.afterCut(now)
}

func (c *controller) afterCut(now time.Time) {
	c.probing = false
	if !c.steady {
		c.endSlowStart(now)
	}
	c.winStart, c.winDone, c.winArea = now, 0, 0
	c.lastRate = 0
}
