package httpx

import (
	"strings"
	"sync"
	"time"
)

// balancer spreads requests over equivalent endpoints (base URLs serving the
// same model): each attempt goes to the endpoint with the fewest requests in
// flight (plus its failures in a row, so an endpoint that fails fast does not
// attract traffic) among those not resting, ties broken round-robin. An endpoint that
// fails RestAfter attempts in a row (transport error, 429, 5xx, invalid JSON)
// rests for RestFor, doubling on each further failure up to 5 minutes; a
// success clears it. Back from a rest, one failure rests it again (for twice
// as long). When every endpoint rests, the one whose rest ends
// first is used, so a run never stalls on its own bookkeeping.
type balancer struct {
	mu        sync.Mutex
	eps       []*endpoint
	next      int
	restAfter int
	restFor   time.Duration
	now       func() time.Time
}

type endpoint struct {
	prefix    string // base URL without a trailing slash
	inFlight  int
	fails     int // consecutive
	restUntil time.Time
	rest      time.Duration
	probation bool // back from a rest: one more failure rests it again
	served    int64
}

func newBalancer(urls []string, restAfter int, restFor time.Duration, now func() time.Time) *balancer {
	if len(urls) < 2 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	b := &balancer{restAfter: restAfter, restFor: restFor, now: now}
	for _, u := range urls {
		b.eps = append(b.eps, &endpoint{prefix: strings.TrimRight(u, "/")})
	}
	return b
}

// route returns the URL to use for rawURL and the endpoint it went to (nil
// when rawURL is not addressed to the first endpoint: left alone).
func (b *balancer) route(rawURL string) (string, *endpoint) {
	first := b.eps[0].prefix
	if !strings.HasPrefix(rawURL, first) {
		return rawURL, nil
	}
	rest := rawURL[len(first):]
	if rest != "" && rest[0] != '/' && rest[0] != '?' {
		return rawURL, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.now()
	var best *endpoint
	n := len(b.eps)
	for i := 0; i < n; i++ {
		e := b.eps[(b.next+i)%n]
		if t.Before(e.restUntil) {
			continue
		}
		if !e.restUntil.IsZero() {
			e.restUntil, e.fails, e.probation = time.Time{}, 0, true
		}
		if best == nil || e.inFlight+e.fails < best.inFlight+best.fails {
			best = e
		}
	}
	if best == nil {
		for _, e := range b.eps {
			if best == nil || e.restUntil.Before(best.restUntil) {
				best = e
			}
		}
	}
	b.next = (b.next + 1) % n
	best.inFlight++
	return best.prefix + rest, best
}

// done records the outcome of an attempt sent to e.
func (b *balancer) done(e *endpoint, ok bool) {
	if e == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e.inFlight--
	if ok {
		e.fails, e.rest, e.probation = 0, 0, false
		e.served++
		return
	}
	e.fails++
	if e.fails >= b.restAfter || e.probation {
		if e.rest == 0 {
			e.rest = b.restFor
		} else {
			e.rest = min(2*e.rest, 5*time.Minute)
		}
		e.restUntil = b.now().Add(e.rest)
	}
}

// servedCounts returns the successful attempts per endpoint prefix.
func (b *balancer) servedCounts() map[string]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int64{}
	for _, e := range b.eps {
		out[e.prefix] = e.served
	}
	return out
}
