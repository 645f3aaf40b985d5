// Package httpx is the HTTP layer every remote client shares: retries with
// exponential backoff and full jitter, Retry-After, per-attempt timeouts,
// JSON validation of successful answers, extra body keys, and a reachability
// probe. It never logs request bodies or headers (API keys travel there).
package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/synthq/synthq/internal/redact"
)

// Options configure a Client. Zero fields take defaults.
type Options struct {
	// MaxRetries bounds the failed attempts of one request while its
	// endpoint answers other requests (default 8; negative: none): a request
	// that keeps failing where others succeed is the item's fault. Failures
	// while the endpoint answers nothing are an outage: waited out, up to
	// MaxOutage, and never counted here. Overload answers (429, 503) never
	// count.
	MaxRetries    int
	Timeout       time.Duration // per attempt, including reading the body (default 60s)
	BaseDelay     time.Duration // first backoff ceiling (default 500ms)
	MaxDelay      time.Duration // backoff ceiling (default 30s)
	MaxRetryAfter time.Duration // longest Retry-After honoured (default 5m)
	// ExtraBody keys are merged into every JSON request body, overriding the
	// caller's: vLLM's top_k, or a temperature of 0 that a client library
	// would drop as an empty value.
	ExtraBody map[string]any
	// Transport is the underlying round tripper (default: a tuned clone of
	// http.DefaultTransport).
	Transport http.RoundTripper
	// Endpoints are equivalent base URLs serving one model: requests
	// addressed to Endpoints[0] are scheduled over all of them, each with
	// its own concurrency limit and up/down state (see sched). With none,
	// requests go where they are addressed with retries only.
	Endpoints []string
	// Role names the endpoints in logs and faults: "llm", "teacher", "embed".
	Role string
	// Concurrency pins every endpoint's limit; 0 (default) finds each one's
	// limit from what it does, starting at InitialConcurrency (default 4)
	// and never above MaxConcurrency (default 512).
	Concurrency        int
	InitialConcurrency int
	MaxConcurrency     int
	RestAfter          int           // failures in a row that take an endpoint down (default 3)
	ProbeMax           time.Duration // longest wait between probes of a down endpoint (default 2s)
	// MaxOutage is how long every endpoint may be down before requests fail
	// with an Endpoint fault (default 30m).
	MaxOutage time.Duration
	// Log receives outage and recovery lines (nil: discarded).
	Log io.Writer
	// Now is the clock (nil: time.Now); tests set it.
	Now func() time.Time
	// Limiter caps requests and tokens per minute over every attempt
	// (nil: no cap). TokenCost gives the tokens one request body costs
	// (nil: 0).
	Limiter   *Limiter
	TokenCost func(body []byte) int
	// MaxBody caps an answer body whose request sets no Expect.MaxBytes
	// (default DefaultMaxBody): no answer is ever read whole into memory
	// past its cap.
	MaxBody int64
}

// EnsureDefaults fills zero fields.
func (o *Options) EnsureDefaults() {
	if o.MaxRetries == 0 {
		o.MaxRetries = 8
	}
	if o.MaxRetries < 0 {
		o.MaxRetries = 0
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.BaseDelay == 0 {
		o.BaseDelay = 500 * time.Millisecond
	}
	if o.MaxDelay == 0 {
		o.MaxDelay = 30 * time.Second
	}
	if o.MaxRetryAfter == 0 {
		o.MaxRetryAfter = 5 * time.Minute
	}
	if o.RestAfter == 0 {
		o.RestAfter = 3
	}
	if o.ProbeMax == 0 {
		o.ProbeMax = 2 * time.Second
	}
	if o.InitialConcurrency == 0 {
		o.InitialConcurrency = 4
	}
	if o.MaxConcurrency == 0 {
		o.MaxConcurrency = 512
	}
	if o.MaxOutage == 0 {
		o.MaxOutage = 30 * time.Minute
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 2048
		t.MaxIdleConnsPerHost = 1024
		o.Transport = t
	}
}

// Client sends requests with retries, scheduled over its endpoints. It
// implements go-openai's HTTPDoer. It is safe for concurrent use.
type Client struct {
	opts    Options
	hc      *http.Client
	s       *sched
	retries atomic.Int64
	// wellFormed and malformed count 2xx answers that passed and failed
	// their request's Expect (a malformed answer fails its item while
	// others pass; it is a misconfiguration when none ever passed).
	wellFormed, malformed atomic.Int64
}

// New returns a Client; nil opts means defaults.
func New(opts *Options) *Client {
	var o Options
	if opts != nil {
		o = *opts
	}
	o.EnsureDefaults()
	return &Client{opts: o, hc: &http.Client{Transport: o.Transport}, s: newSched(&o)}
}

// Served is the number of successful attempts per endpoint (URLs without
// credentials); nil with fewer than two endpoints.
func (c *Client) Served() map[string]int64 {
	if c.s == nil || len(c.s.eps) < 2 {
		return nil
	}
	out := map[string]int64{}
	for _, st := range c.s.stats() {
		out[st.URL] = st.Served
	}
	return out
}

// Stats returns each endpoint's figures (nil without endpoints). Retries
// are the client's, on the first endpoint's row.
func (c *Client) Stats() []EndpointStats {
	if c.s == nil {
		return nil
	}
	return c.s.stats()
}

// Capacity is the most requests this client may have in flight at once:
// what a caller's worker pool needs so that no endpoint waits for work.
func (c *Client) Capacity() int {
	if c.s == nil {
		return max(c.opts.Concurrency, 16)
	}
	return c.s.capacity()
}

// Retries is the number of retries this client has made so far.
func (c *Client) Retries() int64 { return c.retries.Load() }

// StatusError is a final non-2xx answer (after retries, or not retryable).
type StatusError struct {
	Method, URL string
	Status      int
	Body        []byte
}

func (e *StatusError) Error() string {
	body := strings.TrimSpace(string(e.Body))
	if len(body) > 300 {
		body = body[:300] + "…"
	}
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.URL, e.Status, body)
}

// Do sends req. Answers that are the endpoint's trouble (429/5xx, refused
// or reset connections, timeouts) are retried:
// overload and outages are waited out (see sched and MaxOutage), and a
// request that keeps failing while its endpoint answers others is given up
// after MaxRetries with an Item fault. A 2xx answer that is malformed (over
// the request's size cap, not JSON, or refused by its Expect.Check: the
// server is up, its answer unusable) is asked again up
// to 3 times, then fails the item with an Item fault; if no answer of this
// client has ever been well formed, the request keeps asking until several
// requests' worth have been malformed, and then fails with a Config fault
// (a server of the wrong kind: the run stops). A final answer (2xx, or a
// status that says something about the request: 4xx, or a 5xx whose
// message says the input is too long) is returned as a response with its
// body fully read and buffered, never more than its cap (Expect.MaxBytes,
// Options.MaxBody); callers such as go-openai turn it into their own error.
// Do never returns a nil response with a nil error.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s %s: read request body: %w", req.Method, redact.Parsed(req.URL), err)
		}
		body = b
	}
	if len(c.opts.ExtraBody) > 0 && len(body) > 0 {
		merged, err := mergeJSON(body, c.opts.ExtraBody)
		if err != nil {
			return nil, fmt.Errorf("%s %s: add extra body keys: %w", req.Method, redact.Parsed(req.URL), err)
		}
		body = merged
	}
	cost := 0
	if c.opts.TokenCost != nil && c.opts.Limiter != nil {
		cost = c.opts.TokenCost(body)
	}
	fails := 0         // failures that count against this request
	bad := 0           // malformed answers to this request
	var servedAt int64 // successes of the role at this request's first failure
	for attempt := 0; ; attempt++ {
		if err := c.opts.Limiter.Wait(ctx, cost); err != nil {
			return nil, err
		}
		resp, o, err := c.attempt(ctx, req, body)
		var mal *malformedError
		if errors.As(err, &mal) {
			c.malformed.Add(1)
			bad++
			if bad > min(malformedRetries, c.opts.MaxRetries) {
				if f, ok := c.malformedFault(redact.Parsed(req.URL), bad, mal); ok {
					return nil, f
				}
			}
			if bad >= malformedConfigAfter*4 {
				// Never reached while others answer well (the item
				// fails) or nothing does (a misconfiguration): a bound
				// all the same.
				return nil, &Fault{Kind: Item, Role: c.opts.Role, URL: redact.Parsed(req.URL), Err: mal,
					Msg: fmt.Sprintf("answer malformed %d times: %v", bad, mal)}
			}
			c.retries.Add(1)
			if !c.sleep(ctx, c.backoff(min(bad, 6))) {
				return nil, ctx.Err()
			}
			continue
		}
		if o.kind == outOK || o.kind == outAnswered {
			if resp == nil {
				// A final outcome always carries its answer; never hand
				// a caller (go-openai) nothing at all.
				if err == nil {
					err = errors.New("no answer")
				}
				return nil, fmt.Errorf("%s %s: %w", req.Method, redact.Parsed(req.URL), err)
			}
			if o.kind == outOK {
				c.wellFormed.Add(1)
			}
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil && resp != nil {
			err = &StatusError{Method: req.Method, URL: redact.Parsed(req.URL), Status: resp.StatusCode, Body: peek(resp)}
		}
		if f, ok := err.(*Fault); ok { // from the scheduler: the outage lasted too long
			return nil, f
		}
		if errors.Is(err, ErrStopped) {
			return nil, err
		}
		if c.s == nil || (o.kind != outOverload && o.kind != outLimited) {
			if fails == 0 && c.s != nil {
				servedAt = c.s.servedTotal()
			}
			fails++
			if fails > c.opts.MaxRetries {
				switch {
				case c.s == nil:
					// No scheduler: plain retries, then the last answer.
					if resp != nil {
						return resp, nil
					}
					return nil, fmt.Errorf("after %d retries: %w", attempt, err)
				case c.s.servedTotal() > servedAt:
					// Others were answered meanwhile: this request's fault.
					f := &Fault{Kind: Item, Role: c.opts.Role, URL: redact.Parsed(req.URL), Err: err,
						Msg: fmt.Sprintf("failed %d times while the server answered other requests: %v", fails, err)}
					if resp != nil {
						f.Status = resp.StatusCode
						f.Msg = fmt.Sprintf("failed %d times while the server answered other requests: %s", fails, ErrorText(peek(resp)))
					}
					return nil, f
				}
				// Nothing answered: an outage. The scheduler paces the
				// probes; keep waiting.
			}
		}
		c.retries.Add(1)
		d := c.backoff(min(fails, 6))
		switch {
		case o.kind == outLimited && c.s != nil:
			d = 0 // the endpoint pauses; acquire waits
		case o.retryAfter > 0:
			d = o.retryAfter
		case c.s != nil && c.s.downAll():
			d = 0 // the scheduler spaces the probes
		}
		if !c.sleep(ctx, d) {
			return nil, ctx.Err()
		}
	}
}

// sleep waits d, or until ctx is done (false).
func (c *Client) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// attempt sends one attempt through the scheduler and reports its outcome.
func (c *Client) attempt(ctx context.Context, req *http.Request, body []byte) (*http.Response, outcome, error) {
	if c.s == nil {
		return c.once(ctx, req, body)
	}
	target, tk, err := c.s.acquire(ctx, req.URL.String())
	if err != nil {
		return nil, outcome{kind: outFailed}, err
	}
	r := req
	if tk != nil {
		u, err := url.Parse(target)
		if err == nil && CheckURL(target) != nil {
			err = CheckURL(target)
		}
		if err != nil {
			// Start-up checks every URL (pipeline.Config.Validate); a
			// client built without them still never sends, nor calls
			// this endpoint answered. url.Parse's words may quote the
			// password: only CheckURL's reason is shown.
			c.s.release(tk, outcome{kind: outAnswered})
			reason := urlProblem(target)
			if reason == "" {
				reason = "does not parse as a URL"
			}
			return nil, outcome{kind: outFailed}, &Fault{Kind: Config, Role: c.opts.Role, URL: redact.URL(target),
				Msg: "endpoint URL cannot be used: " + reason, Hint: fmt.Sprintf("check every --%s-url", c.opts.Role)}
		}
		r = req.Clone(ctx)
		r.URL, r.Host = u, u.Host
	}
	resp, o, err := c.once(ctx, r, body)
	ro := o
	if IsMalformed(err) {
		// The endpoint answered: a malformed answer says nothing of its
		// health.
		ro = outcome{kind: outAnswered}
	}
	if ctx.Err() != nil && o.kind != outOK && o.kind != outAnswered {
		// Cancelled by the caller: says nothing about the endpoint.
		ro = outcome{kind: outAnswered}
	}
	c.s.release(tk, ro)
	return resp, o, err
}

// once makes one attempt and classifies it (see Classify).
func (c *Client) once(ctx context.Context, req *http.Request, body []byte) (*http.Response, outcome, error) {
	actx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	r := req.Clone(actx)
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	resp, err := c.hc.Do(r)
	if err != nil {
		kind := outFailed
		if actx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			kind = outTimeout
		}
		err = stripURL(err)
		return nil, outcome{kind: kind, reason: transportReason(err)}, fmt.Errorf("%s %s: %w", req.Method, redact.Parsed(req.URL), err)
	}
	ok2xx := resp.StatusCode >= 200 && resp.StatusCode < 300
	exp := expectOf(ctx)
	limit := exp.MaxBytes
	if limit <= 0 {
		limit = c.opts.MaxBody
	}
	if !ok2xx {
		limit = min(limit, maxErrorBody)
	}
	// One byte over the cap tells an answer over it; the rest is never
	// read (closing the body drops the connection).
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	resp.Body.Close()
	if err != nil {
		kind := outFailed
		if actx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			kind = outTimeout
		}
		return nil, outcome{kind: kind, reason: "answer cut off"}, fmt.Errorf("%s %s: read response: %w", req.Method, redact.Parsed(req.URL), err)
	}
	over := int64(len(b)) > limit
	if over {
		b = b[:limit]
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	if ok2xx {
		if over {
			what := exp.What
			if what == "" {
				what = "an answer"
			}
			return resp, outcome{kind: outAnswered, reason: "answer too large"}, &malformedError{what: exp.What,
				reason:  fmt.Sprintf("%s %s: HTTP %d answer larger than %s, the most %s can need: not read further", req.Method, redact.Parsed(req.URL), resp.StatusCode, byteSize(limit), what),
				excerpt: excerpt(b)}
		}
		if !json.Valid(b) {
			// The server is up and answered: its answer is unusable (an
			// HTML page, JSON cut short, a NaN as Python writes it).
			return resp, outcome{kind: outAnswered, reason: "answer not JSON"}, &malformedError{what: exp.What,
				reason:  fmt.Sprintf("%s %s: HTTP %d with a body that is not valid JSON (%d bytes)", req.Method, redact.Parsed(req.URL), resp.StatusCode, len(b)),
				excerpt: excerpt(b)}
		}
		if exp.Check != nil {
			if err := exp.Check(b); err != nil {
				return resp, outcome{kind: outAnswered, reason: "answer malformed"}, &malformedError{what: exp.What, err: err,
					reason:  fmt.Sprintf("%s %s: HTTP %d answer malformed: %v", req.Method, redact.Parsed(req.URL), resp.StatusCode, err),
					excerpt: excerpt(b)}
			}
		}
		o := outcome{kind: outOK}
		if d, spent := budgetSpent(resp.Header, c.now(), c.opts.MaxRetryAfter); spent {
			o.retryAfter = d // answered, but the budget is spent: pause until it refills
		}
		return resp, o, nil
	}
	msg := ErrorText(b)
	reason := fmt.Sprintf("HTTP %d", resp.StatusCode)
	switch Classify(resp.StatusCode, msg) {
	case Endpoint:
		if Overloaded(resp.StatusCode, msg) {
			if m := strings.TrimSpace(msg); m != "" {
				if len(m) > 120 {
					m = m[:120] + "…"
				}
				reason += ": " + m
			}
			now := c.now()
			if d, spent := budgetSpent(resp.Header, now, c.opts.MaxRetryAfter); spent {
				// A hosted API's budget is spent: every request would be
				// refused until it refills, so the endpoint pauses.
				return resp, outcome{kind: outLimited, retryAfter: d, reason: reason}, nil
			}
			// A refusal at capacity: its Retry-After (if any) delays this
			// request only; the scheduler lowers the limit.
			ra, _ := parseWait(resp.Header.Get("Retry-After"), now, c.opts.MaxRetryAfter, false)
			return resp, outcome{kind: outOverload, retryAfter: ra, reason: reason}, nil
		}
		return resp, outcome{kind: outFailed, reason: reason}, nil
	}
	return resp, outcome{kind: outAnswered}, nil
}

func (c *Client) now() time.Time {
	if c.opts.Now != nil {
		return c.opts.Now()
	}
	return time.Now()
}

// transportReason names a transport failure for the log.
func transportReason(err error) string {
	m := err.Error()
	for _, p := range []string{"connection refused", "connection reset", "no such host", "EOF", "timeout", "broken pipe"} {
		if strings.Contains(m, p) {
			return p
		}
	}
	if len(m) > 80 {
		m = m[:80]
	}
	return m
}

// backoff is full jitter: uniform in [0, min(MaxDelay, BaseDelay·2^attempt)].
func (c *Client) backoff(attempt int) time.Duration {
	ceil := c.opts.BaseDelay << uint(min(attempt, 30))
	if ceil > c.opts.MaxDelay || ceil <= 0 {
		ceil = c.opts.MaxDelay
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// byteSize writes n bytes for a person: "512 B", "1.5 MiB".
func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func peek(resp *http.Response) []byte {
	if resp == nil || resp.Body == nil {
		return nil
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return b
}

func mergeJSON(body []byte, extra map[string]any) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	for k, v := range extra {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		m[k] = b
	}
	return json.Marshal(m)
}

// stripURL removes the *url.Error wrapper, whose message repeats the full URL.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Probe checks that something answers HTTP at rawURL: any status counts as
// reachable; only a transport failure (refused, unresolvable, timeout) is an
// error. It sends one GET with no body and no credentials.
func Probe(ctx context.Context, rawURL string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := CheckURL(rawURL); err != nil {
		return fmt.Errorf("invalid URL %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("invalid URL %s", redact.URL(rawURL)) // url.Parse's words may quote a password
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("no answer from %s within %s", redact.Parsed(req.URL), timeout)
		}
		return stripURL(err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	return nil
}

// ErrorText extracts the message of a JSON error body: OpenAI and vLLM
// {"error":{"message"}}, TEI {"error","error_type"}, TEI's OpenAI route
// {"message","code","type"}, FastAPI {"detail"}; otherwise the body's first
// 200 bytes.
func ErrorText(b []byte) string {
	var e struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(b, &e) == nil {
		var s string
		if json.Unmarshal(e.Error, &s) == nil && s != "" {
			return s
		}
		var o struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(e.Error, &o) == nil && o.Message != "" {
			return o.Message
		}
		if e.Message != "" {
			return e.Message
		}
		if len(e.Detail) > 0 {
			return string(e.Detail)
		}
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Doer sends HTTP requests: a *Client, or http.DefaultClient in tests.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// PostJSON sends body as a JSON POST to url through d, with "Authorization:
// Bearer apiKey" when apiKey is set, and returns the status and the whole
// answer body, read up to the cap of ctx's Expect (DefaultMaxBody without
// one): a 2xx answer over it is an error, an error answer is cut to it.
// Only a URL that cannot work (a Config fault, never sent), transport
// failures and answers over the cap are errors, none of them showing the
// URL's credentials; a non-2xx status is for the caller to read (ErrorText
// gives its message). A *Client has already read the body under the same
// cap.
func PostJSON(ctx context.Context, d Doer, url, apiKey string, body []byte) (int, []byte, error) {
	// url.Parse's and the transport's words may quote a password: a URL
	// that cannot work is refused in ours, and is never sent.
	if reason := urlProblem(url); reason != "" {
		return 0, nil, &Fault{Kind: Config, URL: redact.URL(url), Msg: "URL cannot be used: " + reason}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("POST %s: cannot build the request", redact.URL(url))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := d.Do(req)
	if err != nil {
		var f *Fault
		if errors.As(err, &f) || errors.Is(err, ErrStopped) || ctx.Err() != nil {
			return 0, nil, err
		}
		if IsMalformed(err) {
			return 0, nil, err
		}
		return 0, nil, fmt.Errorf("POST %s: %w", redact.URL(url), stripURL(err))
	}
	defer resp.Body.Close()
	limit := expectOf(ctx).MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read answer: %w", err)
	}
	if int64(len(b)) > limit {
		if resp.StatusCode/100 == 2 {
			return resp.StatusCode, nil, &malformedError{what: expectOf(ctx).What,
				reason: fmt.Sprintf("answer larger than %s: not read further", byteSize(limit)), excerpt: excerpt(b)}
		}
		b = b[:limit]
	}
	return resp.StatusCode, b, nil
}
