package httpx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/synthq/synthq/internal/redact"
)

// sched is a role's endpoints (equivalent base URLs serving one model) and
// the per-endpoint scheduling state: a concurrency limit found by a
// controller (or pinned), requests in flight, an up/down state and pauses
// asked for by the server (Retry-After, rate-limit headers).
//
// Each attempt takes a permit from one endpoint (acquire) and gives it back
// with its outcome (release). An attempt goes to the endpoint with the most
// room (limit minus in flight, relative to its limit), ties taken in turn; a
// caller waits while no endpoint has room, which is the backpressure every
// stage gets for free. An endpoint is down after RestAfter failures in a row
// (refused or reset connections, timeouts, 5xx), or after overload answers
// with no success for downAfterSilence; a down endpoint gets one probing
// attempt at a time, spaced by a backoff that doubles up to probeMax, and is
// up again at its first success with the limit it had before the trouble.
// While every endpoint of the role is down the role waits, says so in the
// log once and then every minute, and gives up after MaxOutage with an
// Endpoint fault (the run stops; nothing is marked failed).
type sched struct {
	mu   sync.Mutex
	role string
	eps  []*endpoint
	next int
	// waiters are the callers waiting for a permit, first come first
	// served: a release wakes as many as there are permits free, not all
	// (with hundreds waiting, waking all on every answer cost a fifth of
	// synthq's CPU).
	waiters   []chan struct{}
	now       func() time.Time
	log       io.Writer
	restAfter int
	maxOutage time.Duration
	probeMin  time.Duration
	probeMax  time.Duration
	start     time.Time

	allDownSince time.Time // zero while some endpoint is up
	lastLog      time.Time
	served       int64 // successes over all endpoints
}

const downAfterSilence = 10 * time.Second

type endpoint struct {
	prefix string // base URL without a trailing slash (may hold credentials: never printed)
	name   string // prefix with credentials redacted
	ctl    *controller

	inFlight   int
	fails      int // endpoint failures in a row
	overloads  int // overload answers since the last success
	lastOK     time.Time
	troubleLim int // limit before the current run of failures
	// troubleSince is when the current run of failures began (the first
	// failure or refusal since the last success).
	troubleSince time.Time
	down         bool
	refusing     bool   // down for refusing every request, not for being unreachable
	downSeq      uint64 // requests started before it went down
	downSince    time.Time
	downReason   string
	probing      bool
	probeWait    time.Duration
	pauseUntil   time.Time

	requests, served, errors, refusals, timeouts int64
	first, last                                  time.Time
	lat                                          latHist
	peak                                         int
	answers                                      series // answers per step of time
}

func newSched(o *Options) *sched {
	urls := o.Endpoints
	if len(urls) == 0 {
		return nil
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	s := &sched{role: o.Role, now: now, log: o.Log,
		restAfter: o.RestAfter, maxOutage: o.MaxOutage, probeMin: o.BaseDelay, probeMax: o.ProbeMax, start: now()}
	if s.log == nil {
		s.log = io.Discard
	}
	if s.role == "" {
		s.role = "server"
	}
	for _, u := range urls {
		p := strings.TrimRight(u, "/")
		ctl := newController(o.InitialConcurrency, o.MaxConcurrency, false)
		if o.Concurrency > 0 {
			ctl = newController(o.Concurrency, o.Concurrency, true)
		}
		s.eps = append(s.eps, &endpoint{prefix: p, name: redact.URL(p), ctl: ctl})
	}
	return s
}

// ticket is one attempt's permit.
type ticket struct {
	ep    *endpoint
	seq   uint64
	start time.Time
}

// match returns the endpoint rawURL is addressed to (by the first
// endpoint's prefix, which callers build their URLs from) and the rest of
// the URL; nil when it is addressed elsewhere.
func (s *sched) match(rawURL string) (rest string, ok bool) {
	first := s.eps[0].prefix
	if !strings.HasPrefix(rawURL, first) {
		return "", false
	}
	rest = rawURL[len(first):]
	if rest != "" && rest[0] != '/' && rest[0] != '?' {
		return "", false
	}
	return rest, true
}

// acquire waits for a permit and returns the URL to use. It fails with the
// context's error, or with an Endpoint fault once every endpoint has been
// down for MaxOutage.
func (s *sched) acquire(ctx context.Context, rawURL string) (string, *ticket, error) {
	rest, ok := s.match(rawURL)
	if !ok {
		return rawURL, nil, nil
	}
	stop := stopOf(ctx)
	for {
		select {
		case <-stop:
			return "", nil, ErrStopped
		default:
		}
		s.mu.Lock()
		tk, wakeAt, err := s.tryLocked(s.now())
		var ch chan struct{}
		if tk == nil && err == nil {
			ch = make(chan struct{}, 1)
			s.waiters = append(s.waiters, ch)
		}
		s.mu.Unlock()
		if err != nil {
			return "", nil, err
		}
		if tk != nil {
			return tk.ep.prefix + rest, tk, nil
		}
		var timer <-chan time.Time
		var tm *time.Timer
		if !wakeAt.IsZero() {
			tm = time.NewTimer(max(time.Until(wakeAt), time.Millisecond))
			timer = tm.C
		}
		select {
		case <-ch: // woken by a release: a permit may be free
		case <-ctx.Done():
			s.leave(ch)
			stopTimer(tm)
			return "", nil, ctx.Err()
		case <-stop:
			s.leave(ch)
			stopTimer(tm)
			return "", nil, ErrStopped
		case <-timer:
			s.leave(ch)
		}
		stopTimer(tm)
	}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// leave takes a waiter off the queue; a wake it got meanwhile and will not
// use is passed on to the next waiter.
func (s *sched) leave(ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, w := range s.waiters {
		if w == ch {
			s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
			return
		}
	}
	select {
	case <-ch:
		s.wakeLocked(1)
	default:
	}
}

// wakeLocked wakes up to n waiters, first come first served.
func (s *sched) wakeLocked(n int) {
	for ; n > 0 && len(s.waiters) > 0; n-- {
		s.waiters[0] <- struct{}{}
		s.waiters[0] = nil
		s.waiters = s.waiters[1:]
	}
}

// room is the number of permits free at t: room under each endpoint's
// limit, and one probe for a down endpoint not being probed; none for an
// endpoint paused.
func (s *sched) room(t time.Time) int {
	n := 0
	for _, e := range s.eps {
		switch {
		case t.Before(e.pauseUntil):
		case e.down:
			if !e.probing {
				n++
			}
		default:
			n += max(e.ctl.limit-e.inFlight, 0)
		}
	}
	return n
}

// try takes a permit at time t if an endpoint has room; otherwise it
// returns when one may have room again (zero: at the next release).
func (s *sched) try(t time.Time) (*ticket, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tryLocked(t)
}

func (s *sched) tryLocked(t time.Time) (*ticket, time.Time, error) {
	if err := s.outageErr(t); err != nil {
		return nil, time.Time{}, err
	}
	e, wakeAt := s.pick(t)
	if e == nil {
		s.logOutage(t)
		if !s.allDownSince.IsZero() && s.maxOutage > 0 {
			if end := s.allDownSince.Add(s.maxOutage); wakeAt.IsZero() || end.Before(wakeAt) {
				wakeAt = end
			}
		}
		return nil, wakeAt, nil
	}
	e.inFlight++
	e.requests++
	e.peak = max(e.peak, e.inFlight)
	if e.first.IsZero() {
		e.first = t
	}
	if e.down {
		e.probing = true
	}
	return &ticket{ep: e, seq: e.ctl.started(e.inFlight, t), start: t}, time.Time{}, nil
}

// pick chooses an endpoint with room, or returns when the next one may
// have room (zero: when a permit is released).
func (s *sched) pick(t time.Time) (*endpoint, time.Time) {
	var best *endpoint
	var bestRoom float64
	var wakeAt time.Time
	n := len(s.eps)
	for i := 0; i < n; i++ {
		e := s.eps[(s.next+i)%n]
		if t.Before(e.pauseUntil) {
			if wakeAt.IsZero() || e.pauseUntil.Before(wakeAt) {
				wakeAt = e.pauseUntil
			}
			continue
		}
		if e.down {
			if !e.probing {
				// A probe of a down endpoint goes first: it is how
				// recovery is seen.
				s.next = (s.next + 1) % n
				return e, time.Time{}
			}
			continue
		}
		room := float64(e.ctl.limit-e.inFlight) / float64(e.ctl.limit)
		if e.inFlight < e.ctl.limit && (best == nil || room > bestRoom) {
			best, bestRoom = e, room
		}
	}
	if best != nil {
		s.next = (s.next + 1) % n
	}
	return best, wakeAt
}

// outcome is how one attempt went, as the scheduler sees it.
type outcome struct {
	kind       outcomeKind
	retryAfter time.Duration // server-asked pause (Retry-After, rate-limit reset)
	reason     string        // for the log: "connection refused", "HTTP 503"
}

type outcomeKind uint8

const (
	outOK       outcomeKind = iota // 2xx
	outAnswered                    // a final non-2xx answer: the server is up
	outOverload                    // 429/503/overloaded without a rate-limit pause
	outLimited                     // rate limited: pause for retryAfter
	outTimeout                     // no answer within the attempt's timeout
	outFailed                      // refused/reset connection, DNS, 5xx
)

// release returns t's permit with the attempt's outcome.
func (s *sched) release(t *ticket, o outcome) {
	if t == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := t.ep
	now := s.now()
	inFlight := e.inFlight
	e.inFlight--
	e.last = now
	e.ctl.track(e.inFlight, now)
	switch o.kind {
	case outOK, outAnswered:
		if o.kind == outOK {
			e.served++
			s.served++
			e.lat.add(now.Sub(t.start))
			e.answers.add(now.Sub(e.first))
			e.ctl.succeeded(now)
		} else {
			e.errors++
		}
		if e.down && t.seq <= e.downSeq {
			break // sent before it went down: says nothing of now
		}
		e.fails, e.overloads, e.troubleLim, e.lastOK = 0, 0, 0, now
		if o.retryAfter > 0 { // rate-limit headers say the budget is spent
			e.pauseUntil = laterOf(e.pauseUntil, now.Add(o.retryAfter))
		}
		s.up(e, now)
	case outOverload, outLimited:
		e.refusals++
		s.trouble(e, now)
		e.overloads++
		e.ctl.overloaded(t.seq, inFlight, now)
		var pause time.Duration
		switch {
		case o.kind == outLimited:
			// The server says its budget is spent (rate-limit headers):
			// every request would be refused until it refills.
			pause = o.retryAfter
		case e.overloads >= max(s.restAfter, e.troubleLim):
			// A whole limit's worth refused and none answered: not a
			// refusal at capacity (that delays only the refused request,
			// by its Retry-After) but a server refusing nearly
			// everything. The endpoint waits as asked, or for a backoff
			// that doubles up to ProbeMax when nothing is asked.
			if e.probeWait == 0 {
				e.probeWait = s.probeMin
			} else {
				e.probeWait = min(2*e.probeWait, s.probeMax)
			}
			pause = max(o.retryAfter, e.probeWait)
		}
		e.pauseUntil = laterOf(e.pauseUntil, now.Add(pause))
		// Refusals and nothing answered for the silence (or a pause that
		// will make it so): the endpoint is down, its outage counted from
		// the first refusal, so --max-outage bounds the wait.
		silent := now.Sub(laterOf(e.lastOK, e.first))
		if e.overloads >= s.restAfter && silent+pause >= s.silence() {
			s.markDown(e, now, o.reason, true)
		} else if e.down {
			e.downReason = o.reason
			s.probeFailed(e, now)
		}
	case outTimeout, outFailed:
		e.errors++
		if e.down && o.reason != "" {
			e.downReason = o.reason // the latest word: a refused probe says more than the EOF that took it down
		}
		if o.kind == outTimeout {
			e.timeouts++
			e.ctl.timedOut(t.seq, now)
		}
		s.trouble(e, now)
		e.fails++
		if e.down {
			s.probeFailed(e, now)
		} else if e.fails >= s.restAfter {
			s.markDown(e, now, o.reason, false)
		}
	}
	s.wakeLocked(max(s.room(now), 1))
}

// trouble remembers the limit an endpoint had before a run of failures, to
// give it back when the endpoint recovers, and when the run began.
func (s *sched) trouble(e *endpoint, now time.Time) {
	if e.fails == 0 && e.overloads == 0 && !e.down {
		e.troubleLim = e.ctl.limit
		e.troubleSince = now
	}
}

// silence is how long an endpoint that refuses (429/503) and answers
// nothing is given before it counts as down: downAfterSilence, or
// MaxOutage if shorter, so that --max-outage bounds the wait for a server
// that refuses forever as it bounds the wait for one that is gone.
func (s *sched) silence() time.Duration {
	if s.maxOutage > 0 && s.maxOutage < downAfterSilence {
		return s.maxOutage
	}
	return downAfterSilence
}

// markDown takes e down; refusing says it still answers, refusing every
// request (429/503), rather than being unreachable. Its outage counts from
// the first failure since its last success.
func (s *sched) markDown(e *endpoint, now time.Time, reason string, refusing bool) {
	if !e.down {
		since := e.troubleSince
		if since.IsZero() || since.After(now) {
			since = now
		}
		e.down, e.downSince, e.downReason, e.downSeq, e.refusing = true, since, reason, e.ctl.seq, refusing
		if e.troubleLim > 0 {
			e.ctl.limit = e.troubleLim
		}
		if s.allDown() {
			s.allDownSince = since
			for _, o := range s.eps {
				s.allDownSince = laterOf(s.allDownSince, o.downSince)
			}
			s.lastLog = time.Time{}
			s.logOutage(now)
		} else {
			fmt.Fprintf(s.log, "warning: %s endpoint %s %s since %s (%s); going on with the others\n",
				s.role, e.name, e.state(), since.Format("15:04:05"), reason)
		}
	}
	s.probeFailed(e, now)
}

// state names why a down endpoint is down, for the log and the fault.
func (e *endpoint) state() string {
	if e.refusing {
		return "refusing every request"
	}
	return "unreachable"
}

func (s *sched) probeFailed(e *endpoint, now time.Time) {
	e.probing = false
	if e.probeWait == 0 {
		e.probeWait = s.probeMin
	} else {
		e.probeWait = min(2*e.probeWait, s.probeMax)
	}
	e.pauseUntil = laterOf(e.pauseUntil, now.Add(e.probeWait))
}

func (s *sched) up(e *endpoint, now time.Time) {
	e.probing, e.probeWait = false, 0
	if !e.down {
		return
	}
	e.down, e.refusing = false, false
	if !s.allDownSince.IsZero() {
		fmt.Fprintf(s.log, "%s endpoint %s answers again after %s; resuming\n", s.role, e.name, now.Sub(s.allDownSince).Round(time.Second))
		s.allDownSince = time.Time{}
	} else {
		fmt.Fprintf(s.log, "%s endpoint %s answers again\n", s.role, e.name)
	}
}

func (s *sched) allDown() bool {
	for _, e := range s.eps {
		if !e.down {
			return false
		}
	}
	return true
}

// outageErr is the Endpoint fault once every endpoint has been down for
// MaxOutage.
func (s *sched) outageErr(t time.Time) error {
	if s.allDownSince.IsZero() || s.maxOutage <= 0 || t.Sub(s.allDownSince) < s.maxOutage {
		return nil
	}
	e := s.eps[0]
	msg := fmt.Sprintf("unreachable for %s (%s)", s.maxOutage, e.downReason)
	if e.refusing {
		msg = fmt.Sprintf("refused every request for %s (%s)", s.maxOutage, e.downReason)
	}
	return &Fault{Kind: Endpoint, Role: s.role, URL: e.name, Msg: msg,
		Hint: "re-run the same command to resume: every answer received so far is stored (--max-outage sets how long to wait)"}
}

// logOutage says once, and then every minute, that the role waits.
func (s *sched) logOutage(t time.Time) {
	if s.allDownSince.IsZero() || (!s.lastLog.IsZero() && t.Sub(s.lastLog) < time.Minute) {
		return
	}
	first := s.lastLog.IsZero()
	s.lastLog = t
	e := s.eps[0]
	names := e.name
	if len(s.eps) > 1 {
		names = fmt.Sprintf("%s (and %d more)", e.name, len(s.eps)-1)
	}
	if first {
		fmt.Fprintf(s.log, "%s endpoint %s %s since %s (%s); waiting, up to --max-outage %s\n", s.role, names, e.state(), s.allDownSince.Format("15:04:05"), e.downReason, s.maxOutage)
		return
	}
	fmt.Fprintf(s.log, "%s endpoint %s still %s (since %s, %s ago; %s); waiting, up to --max-outage %s\n",
		s.role, names, e.state(), s.allDownSince.Format("15:04:05"), t.Sub(s.allDownSince).Round(time.Second), e.downReason, s.maxOutage)
}

// servedTotal is the number of successes over all endpoints.
func (s *sched) servedTotal() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served
}

// capacity is the most requests the endpoints can take at once.
func (s *sched) capacity() int {
	n := 0
	for _, e := range s.eps {
		n += e.ctl.max
	}
	return n
}

// EndpointStats are one endpoint's figures for the manifest, `synthq stats`
// and the report.
type EndpointStats struct {
	Role         string  `json:"role"`
	URL          string  `json:"url"` // credentials redacted
	Requests     int64   `json:"requests"`
	Served       int64   `json:"served"`
	Errors       int64   `json:"errors"`
	Refusals     int64   `json:"refusals"`
	Timeouts     int64   `json:"timeouts"`
	Concurrency  int     `json:"concurrency"` // the limit now (settled, or pinned)
	PeakInFlight int     `json:"peak_in_flight"`
	InFlight     int     `json:"in_flight"`
	Rate         float64 `json:"rate"` // successes per second, first to last request
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	SettledS     float64 `json:"settled_s,omitempty"` // seconds from the first request to the end of slow start
	Down         bool    `json:"down,omitempty"`
	DownSince    string  `json:"down_since,omitempty"`
	// Series is the answers per second in each step of SeriesStepS seconds
	// from the first request (at most 240 steps: a longer run has longer
	// steps; the last step is over its elapsed part).
	Series      []float64 `json:"series,omitempty"`
	SeriesStepS float64   `json:"series_step_s,omitempty"`
	Start       string    `json:"start,omitempty"` // the first request, UTC
}

func (s *sched) stats() []EndpointStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]EndpointStats, len(s.eps))
	for i, e := range s.eps {
		st := EndpointStats{Role: s.role, URL: e.name, Requests: e.requests, Served: e.served, Errors: e.errors,
			Refusals: e.refusals, Timeouts: e.timeouts, Concurrency: e.ctl.limit, PeakInFlight: e.peak, InFlight: e.inFlight,
			P50ms: e.lat.quantile(0.5), P99ms: e.lat.quantile(0.99), Down: e.down}
		if el := e.last.Sub(e.first).Seconds(); el > 0 {
			st.Rate = float64(e.served) / el
		}
		if !e.ctl.settled.IsZero() && !e.first.IsZero() {
			st.SettledS = e.ctl.settled.Sub(e.first).Seconds()
		}
		if st.Series = e.answers.rates(e.last.Sub(e.first)); st.Series != nil {
			st.SeriesStepS = e.answers.step.Seconds()
			st.Start = e.first.UTC().Format(time.RFC3339Nano)
		}
		if e.down {
			st.DownSince = e.downSince.Format(time.RFC3339)
		}
		out[i] = st
	}
	return out
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// latHist is a latency histogram with buckets 5% apart from 1 ms: bounded
// memory, quantiles within 5%.
type latHist struct {
	n [400]int64
	c int64
}

const latBase = 1.05

func (h *latHist) add(d time.Duration) {
	ms := float64(d) / float64(time.Millisecond)
	i := 0
	if ms > 1 {
		i = min(int(math.Log(ms)/math.Log(latBase))+1, len(h.n)-1)
	}
	h.n[i]++
	h.c++
}

func (h *latHist) quantile(q float64) float64 {
	if h.c == 0 {
		return 0
	}
	target := int64(math.Ceil(q * float64(h.c)))
	var acc int64
	for i, n := range h.n {
		acc += n
		if acc >= target {
			if i == 0 {
				return 1
			}
			return math.Round(math.Pow(latBase, float64(i))*10) / 10
		}
	}
	return 0
}

// downAll reports whether every endpoint is down.
func (s *sched) downAll() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.allDown()
}

// ErrStopped is returned for a request that was not sent because the run is
// stopping (see WithStop).
var ErrStopped = errors.New("stopping: request not sent")

type stopKey struct{}

// WithStop returns a context under which requests not yet sent when stop
// ends are not sent (they fail with ErrStopped), while requests already in
// flight go on until ctx itself ends: a graceful stop keeps the answers
// that are paid for.
func WithStop(ctx context.Context, stop <-chan struct{}) context.Context {
	return context.WithValue(ctx, stopKey{}, stop)
}

func stopOf(ctx context.Context) <-chan struct{} {
	c, _ := ctx.Value(stopKey{}).(<-chan struct{})
	return c
}
