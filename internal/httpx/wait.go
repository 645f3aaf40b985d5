package httpx

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// parseWait reads a server's "wait this long" header value at now and
// returns it clamped to [0, ceil]; ok is false when the value says nothing
// usable (empty, unparseable, NaN, ±Inf, negative, or a date already past),
// so the caller falls back to its own backoff. Accepted forms:
//
//   - delta seconds, integer or decimal ("1", "0.5"; RFC 9110 allows only
//     integers, gateways send decimals);
//   - an HTTP date (RFC 9110) or an RFC 3339 time (Anthropic's resets);
//   - with resets true, also a Go/OpenAI duration ("1s", "6m0s", "120ms")
//     and Unix epoch seconds (a number past 1e9: GitHub-style
//     x-ratelimit-reset).
//
// Seconds are converted in floating point and clamped before they become a
// time.Duration, so "1e10" is ceil, not an overflow to a negative wait.
// Cost: a few string parses.
func parseWait(v string, now time.Time, ceil time.Duration, resets bool) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	secs := math.NaN()
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		secs = f
		if resets && f > 1e9 { // an epoch time, not a delay
			secs = f - float64(now.UnixNano())/1e9
			if f > 1e11 { // far past any sane epoch: treat as a (huge) delay
				secs = f
			}
		}
	} else if resets {
		if d, err := time.ParseDuration(v); err == nil {
			secs = d.Seconds()
		}
	}
	if math.IsNaN(secs) {
		if t, err := http.ParseTime(v); err == nil {
			secs = t.Sub(now).Seconds()
		} else if t, err := time.Parse(time.RFC3339, v); err == nil {
			secs = t.Sub(now).Seconds()
		}
	}
	if math.IsNaN(secs) || math.IsInf(secs, 0) || secs <= 0 {
		return 0, false
	}
	if secs >= ceil.Seconds() {
		return ceil, true
	}
	return time.Duration(secs * float64(time.Second)), true
}

// budgetHeaders are the rate-limit headers that say a hosted API's budget
// is spent: the remaining count, and the reset that says when it refills.
// OpenAI, Azure OpenAI, Groq, Together and most gateways send the x-
// ratelimit-* pairs; the IETF draft RateLimit-* (and its combined
// "RateLimit: remaining=0, reset=5"); Anthropic its own.
var budgetHeaders = [][2]string{
	{"X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests"},
	{"X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens"},
	{"X-Ratelimit-Remaining", "X-Ratelimit-Reset"},
	{"Ratelimit-Remaining", "Ratelimit-Reset"},
	{"Anthropic-Ratelimit-Requests-Remaining", "Anthropic-Ratelimit-Requests-Reset"},
	{"Anthropic-Ratelimit-Tokens-Remaining", "Anthropic-Ratelimit-Tokens-Reset"},
	{"Anthropic-Ratelimit-Input-Tokens-Remaining", "Anthropic-Ratelimit-Input-Tokens-Reset"},
	{"Anthropic-Ratelimit-Output-Tokens-Remaining", "Anthropic-Ratelimit-Output-Tokens-Reset"},
}

// budgetSpent reports whether h says a rate-limit budget is spent (a
// remaining count of 0 in any of budgetHeaders, or the combined IETF
// RateLimit header) and for how long, clamped to ceil: the matching reset,
// else Retry-After, else a second. A reset of the budget is what pauses a
// whole endpoint; without these headers a 429 is a refusal at capacity.
func budgetSpent(h http.Header, now time.Time, ceil time.Duration) (time.Duration, bool) {
	var d time.Duration
	spent := false
	for _, p := range budgetHeaders {
		rem := strings.TrimSpace(h.Get(p[0]))
		if rem == "" {
			continue
		}
		if n, err := strconv.ParseFloat(rem, 64); err != nil || math.IsNaN(n) || n >= 1 {
			continue
		}
		spent = true
		if r, ok := parseWait(h.Get(p[1]), now, ceil, true); ok {
			d = max(d, r)
		}
	}
	if v := h.Get("Ratelimit"); v != "" { // draft-ietf-httpapi-ratelimit-headers: "limit=100, remaining=0, reset=50"
		var rem, reset string
		for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' }) {
			k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "remaining", "r":
				rem = strings.TrimSpace(val)
			case "reset", "t":
				reset = strings.TrimSpace(val)
			}
		}
		if n, err := strconv.ParseFloat(rem, 64); err == nil && n < 1 && !math.IsNaN(n) {
			spent = true
			if r, ok := parseWait(reset, now, ceil, false); ok {
				d = max(d, r)
			}
		}
	}
	if !spent {
		return 0, false
	}
	if d == 0 {
		if r, ok := parseWait(h.Get("Retry-After"), now, ceil, false); ok {
			d = r
		} else {
			d = min(time.Second, ceil)
		}
	}
	return d, true
}
