package httpx

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Absurd waits from a server (issue 25: "Retry-After: 1e10", NaN, Inf
// overflowed to a 1 ms pause, a huge reset to 0) are clamped or ignored,
// never turned into a negative or tiny wait.
func TestParseWait(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	ceil := 5 * time.Minute
	cases := []struct {
		v      string
		resets bool
		want   time.Duration
		ok     bool
	}{
		{"", false, 0, false},
		{"1", false, time.Second, true},
		{" 2 ", false, 2 * time.Second, true},
		{"0.5", false, 500 * time.Millisecond, true},
		{"0", false, 0, false},
		{"-3", false, 0, false},
		{"1e10", false, ceil, true},
		{"1e400", false, 0, false}, // ParseFloat: out of range, +Inf with an error
		{"NaN", false, 0, false},
		{"nan", false, 0, false},
		{"Inf", false, 0, false},
		{"+Inf", false, 0, false},
		{"-Inf", false, 0, false},
		{"9223372036854775807", false, ceil, true},
		{"soon", false, 0, false},
		{"Thu, 03 Dec 2026 10:00:30 GMT", false, 30 * time.Second, true},
		{"Thu, 03 Dec 2026 09:59:00 GMT", false, 0, false}, // past
		{"Thu, 03 Dec 2099 10:00:00 GMT", false, ceil, true},
		{"1s", false, 0, false}, // Retry-After is never a Go duration
		// Rate-limit resets.
		{"1s", true, time.Second, true},
		{"6m0s", true, ceil, true},
		{"120ms", true, 120 * time.Millisecond, true},
		{"1.5", true, 1500 * time.Millisecond, true},
		{"-1s", true, 0, false},
		{"1e10", true, ceil, true},
		{"NaN", true, 0, false},
		{"Inf", true, 0, false},
		{"99999999999999999999s", true, 0, false},    // ParseDuration overflows: unusable
		{"1796292030", true, 30 * time.Second, true}, // Unix epoch seconds, 30 s from now
		{"1796291970", true, 0, false},               // an epoch already past
		{"2026-12-03T10:00:20Z", true, 20 * time.Second, true},
	}
	for _, tc := range cases {
		got, ok := parseWait(tc.v, now, ceil, tc.resets)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseWait(%q, resets %v) = %v, %v; want %v, %v", tc.v, tc.resets, got, ok, tc.want, tc.ok)
		}
		if got < 0 || got > ceil {
			t.Errorf("parseWait(%q) = %v, outside [0, %v]", tc.v, got, ceil)
		}
	}
}

// Only headers that say a budget is spent pause the endpoint; a 429 with
// only Retry-After is a refusal at capacity.
func TestBudgetSpent(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	ceil := 5 * time.Minute
	cases := []struct {
		name  string
		h     map[string]string
		want  time.Duration
		spent bool
	}{
		{"none", nil, 0, false},
		{"retry-after only", map[string]string{"Retry-After": "1"}, 0, false},
		{"openai requests", map[string]string{"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.2s"}, 1200 * time.Millisecond, true},
		{"openai budget left", map[string]string{"x-ratelimit-remaining-requests": "12", "x-ratelimit-reset-requests": "1.2s"}, 0, false},
		{"openai tokens, longer", map[string]string{"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s",
			"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6s"}, 6 * time.Second, true},
		{"spent, absurd reset, retry-after", map[string]string{"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "NaN", "Retry-After": "3"}, 3 * time.Second, true},
		{"spent, huge reset", map[string]string{"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1e10"}, ceil, true},
		{"spent, nothing says when", map[string]string{"x-ratelimit-remaining-requests": "0"}, time.Second, true},
		{"remaining NaN", map[string]string{"x-ratelimit-remaining-requests": "NaN", "Retry-After": "3"}, 0, false},
		{"github epoch", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1796292060"}, time.Minute, true},
		{"ietf draft", map[string]string{"RateLimit-Remaining": "0", "RateLimit-Reset": "7"}, 7 * time.Second, true},
		{"ietf combined", map[string]string{"RateLimit": "limit=100, remaining=0, reset=4"}, 4 * time.Second, true},
		{"anthropic", map[string]string{"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": "2026-12-03T10:00:09Z"}, 9 * time.Second, true},
	}
	for _, tc := range cases {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		got, spent := budgetSpent(h, now, ceil)
		if got != tc.want || spent != tc.spent {
			t.Errorf("%s: budgetSpent = %v, %v; want %v, %v", tc.name, got, spent, tc.want, tc.spent)
		}
	}
}

// How one answer is classified: a 429 with Retry-After alone is a refusal
// at capacity (the request waits, the endpoint does not); with a spent
// budget in its headers it pauses the endpoint until the reset.
func TestOverloadAnswerKinds(t *testing.T) {
	cases := []struct {
		name   string
		status int
		h      map[string]string
		kind   outcomeKind
		wait   time.Duration
	}{
		{"429 Retry-After", 429, map[string]string{"Retry-After": "1"}, outOverload, time.Second},
		{"429 absurd Retry-After", 429, map[string]string{"Retry-After": "1e10"}, outOverload, 5 * time.Minute},
		{"429 NaN Retry-After", 429, map[string]string{"Retry-After": "NaN"}, outOverload, 0},
		{"503 bare", 503, nil, outOverload, 0},
		{"429 spent budget", 429, map[string]string{"Retry-After": "1", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}, outLimited, 2 * time.Second},
		{"200 spent budget", 200, map[string]string{"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "300ms"}, outOK, 300 * time.Millisecond},
		{"200 budget left", 200, map[string]string{"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "300ms"}, outOK, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.h {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, `{"error":{"message":"Too many requests"}}`)
			}))
			defer srv.Close()
			c := New(&Options{})
			req, _ := http.NewRequest(http.MethodPost, srv.URL, nil)
			_, o, _ := c.once(context.Background(), req, nil)
			if o.kind != tc.kind || o.retryAfter != tc.wait {
				t.Errorf("outcome kind %d wait %v, want kind %d wait %v", o.kind, o.retryAfter, tc.kind, tc.wait)
			}
		})
	}
}

// A refusal at capacity while the endpoint answers others lowers the
// limit but does not pause the endpoint: the next permit is free as soon
// as one is released, at the same instant (before issue 26 a 429 with
// Retry-After: 1 paused every request to the endpoint for a second).
func TestCapacityRefusalDoesNotPauseEndpoint(t *testing.T) {
	c := newClock()
	s := newSched(&Options{Endpoints: []string{"http://t/v1"}, Now: c.now, InitialConcurrency: 8, MaxConcurrency: 64,
		RestAfter: 3, MaxOutage: time.Minute, BaseDelay: 500 * time.Millisecond, ProbeMax: 2 * time.Second})
	var tks []*ticket
	for i := 0; i < 8; i++ {
		tk, _, err := s.try(c.now())
		if tk == nil || err != nil {
			t.Fatalf("permit %d: %v", i, err)
		}
		tks = append(tks, tk)
	}
	c.add(50 * time.Millisecond)
	s.release(tks[0], outcome{kind: outOK})
	s.release(tks[1], outcome{kind: outOverload, retryAfter: time.Second, reason: "HTTP 429"})
	if lim := s.eps[0].ctl.limit; lim != 6 {
		t.Errorf("limit %d after a refusal with 7 in flight, want 6", lim)
	}
	s.release(tks[2], outcome{kind: outOK})
	if tk, wake, _ := s.try(c.now()); tk == nil {
		t.Fatalf("no permit after a capacity refusal: endpoint paused until %v", wake.Sub(c.now()))
	}
	if st := s.stats()[0]; st.Refusals != 1 || st.Down {
		t.Errorf("refusals %d down %v, want 1 and up", st.Refusals, st.Down)
	}
}
