package fakes

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"
)

// A fake's Capacity says how it behaves under load. Three shapes, each
// selectable on any fake (LLM, Reranker, Embedder):
//
//   - fixed slots (TEI, Infinity): Latency and MaxInFlight = C; a request
//     beyond C is refused at once (TEI: 429 {"error":"Model is
//     overloaded","error_type":"Overloaded"}; the LLM fake: 503 as vLLM behind
//     a proxy). Best rate C / Latency.
//   - continuous batching (vLLM, TGI, llama.cpp -np, Ollama): Batching; never
//     refuses, queues beyond its batch. Best rate M / (T·(a + b·M)).
//   - a hosted API's requests-per-minute limit: RateLimit; 429 with
//     Retry-After and OpenAI's x-ratelimit-* headers. Best rate RPM / 60.
//
// They combine (a rate limit in front of a batching server), though the
// tests use one at a time.

// Batching is a continuous-batching engine: every decode step takes
// StepBase + StepPerRunning·running (a + b·running), at most MaxRunning
// requests run at once and the others wait in a FIFO queue (never
// refused); a request leaves after Steps decode steps (max_tokens-ish).
// A request that arrives during a step joins at the next one, as vLLM's
// scheduler admits new sequences between steps.
type Batching struct {
	StepBase       time.Duration // a
	StepPerRunning time.Duration // b
	MaxRunning     int           // M (default 32)
	Steps          int           // T (default 16)

	mu      sync.Mutex
	queue   []*batchJob
	running []*batchJob
	active  bool // the step loop runs
	peak    int  // most running at once
	steps   int64
}

type batchJob struct {
	left int
	done chan struct{}
}

// BestRate is the engine's throughput with a full batch, requests/s:
// M / (T·(a + b·M)).
func (b *Batching) BestRate() float64 {
	m, t := b.maxRunning(), b.stepsPer()
	step := b.StepBase + time.Duration(m)*b.StepPerRunning
	return float64(m) / (float64(t) * step.Seconds())
}

// RateAt is the throughput with n requests running (n ≤ M): n / (T·(a+b·n)).
func (b *Batching) RateAt(n int) float64 {
	n = min(n, b.maxRunning())
	step := b.StepBase + time.Duration(n)*b.StepPerRunning
	return float64(n) / (float64(b.stepsPer()) * step.Seconds())
}

// Peak is the most requests that ran in one step.
func (b *Batching) Peak() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

func (b *Batching) maxRunning() int {
	if b.MaxRunning <= 0 {
		return 32
	}
	return b.MaxRunning
}

func (b *Batching) stepsPer() int {
	if b.Steps <= 0 {
		return 16
	}
	return b.Steps
}

// serve queues one request and returns when its last step is done.
func (b *Batching) serve() {
	j := &batchJob{left: b.stepsPer(), done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, j)
	if !b.active {
		b.active = true
		go b.loop()
	}
	b.mu.Unlock()
	<-j.done
}

// loop runs decode steps while there is work; it ends when the engine is
// idle (the next request starts it again), so an idle fake holds no
// goroutine.
func (b *Batching) loop() {
	next := time.Now()
	for {
		b.mu.Lock()
		for len(b.running) < b.maxRunning() && len(b.queue) > 0 {
			b.running = append(b.running, b.queue[0])
			b.queue = b.queue[1:]
		}
		n := len(b.running)
		if n == 0 {
			b.active = false
			b.mu.Unlock()
			return
		}
		b.peak = max(b.peak, n)
		b.steps++
		b.mu.Unlock()

		// Steps are timed against a deadline, so the sleep's own overhead
		// does not add up; a loop that fell behind by more than a step
		// starts afresh rather than racing to catch up.
		step := b.StepBase + time.Duration(n)*b.StepPerRunning
		now := time.Now()
		if now.Sub(next) > step {
			next = now
		}
		next = next.Add(step)
		time.Sleep(time.Until(next))

		b.mu.Lock()
		keep := b.running[:0]
		for _, j := range b.running {
			if j.left--; j.left <= 0 {
				close(j.done)
			} else {
				keep = append(keep, j)
			}
		}
		clear(b.running[len(keep):])
		b.running = keep
		b.mu.Unlock()
	}
}

// RateLimit is a hosted API's requests-per-minute limit, as OpenAI applies
// it: a bucket of RPM requests refilled continuously (RPM/60 a second)
// holding at most Burst (default: one second's worth). A request with the
// bucket empty gets 429 with OpenAI's body ({"error":{"message":"Rate limit
// reached for … on requests per min (RPM): Limit N, Used N, Requested 1.
// Please try again in 1.2s. …","type":"requests","param":null,
// "code":"rate_limit_exceeded"}}), Retry-After (whole seconds, rounded up)
// and x-ratelimit-limit/remaining/reset-requests; every answer carries the
// x-ratelimit-* headers. Set Now to drive it from a simulated clock.
type RateLimit struct {
	RPM   float64
	Burst float64
	Model string
	Now   func() time.Time

	mu     sync.Mutex
	tokens float64
	last   time.Time
	init   bool
}

// BestRate is RPM/60 requests a second.
func (l *RateLimit) BestRate() float64 { return l.RPM / 60 }

// take spends one request of the budget, and says the headers to send
// and, when refused, how long until a request would be accepted.
func (l *RateLimit) take() (ok bool, remaining int, wait, reset time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	t := now()
	rate := l.RPM / 60
	burst := l.Burst
	if burst <= 0 {
		burst = max(rate, 1)
	}
	if !l.init {
		l.init, l.tokens, l.last = true, burst, t
	}
	if el := t.Sub(l.last).Seconds(); el > 0 {
		l.tokens = min(burst, l.tokens+el*rate)
		l.last = t
	}
	if l.tokens >= 1 {
		l.tokens--
		ok = true
	} else {
		wait = time.Duration((1 - l.tokens) / rate * float64(time.Second))
	}
	// OpenAI's reset is the time until the budget is full again.
	reset = time.Duration((burst - l.tokens) / rate * float64(time.Second))
	return ok, int(math.Floor(l.tokens)), wait, reset
}

// headers writes OpenAI's rate-limit headers.
func (l *RateLimit) headers(h http.Header, remaining int, reset time.Duration) {
	h.Set("x-ratelimit-limit-requests", strconv.Itoa(int(l.RPM)))
	h.Set("x-ratelimit-remaining-requests", strconv.Itoa(max(remaining, 0)))
	h.Set("x-ratelimit-reset-requests", openAIDuration(reset))
}

// refuse writes OpenAI's 429 for a spent request budget.
func (l *RateLimit) refuse(w http.ResponseWriter, wait, reset time.Duration) {
	l.headers(w.Header(), 0, reset)
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	model := l.Model
	if model == "" {
		model = "gpt-4o-mini"
	}
	writeJSON(w, 429, map[string]any{"error": map[string]any{
		"message": fmt.Sprintf("Rate limit reached for %s in organization org-fake on requests per min (RPM): Limit %d, Used %d, Requested 1. Please try again in %s. Visit https://platform.openai.com/account/rate-limits to learn more.",
			model, int(l.RPM), int(l.RPM), openAIDuration(wait)),
		"type": "requests", "param": nil, "code": "rate_limit_exceeded"}})
}

// openAIDuration formats d as OpenAI's headers do: "20ms", "1.5s", "6m0s".
func openAIDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", max(d.Milliseconds(), 1))
	case d < time.Minute:
		return strconv.FormatFloat(math.Round(d.Seconds()*1000)/1000, 'f', -1, 64) + "s"
	}
	return d.Round(time.Second).String()
}

// Down takes a fake's server down as a crash or restart does: its listener
// is closed, so new connections are refused, and every open connection is
// closed (requests in flight get no answer). Up brings it back.
func Down(s *httptest.Server) {
	s.Listener.Close()
	s.CloseClientConnections()
}

// Up listens again on the address the server had before Down, as a
// restarted server does, and serves on it. It retries for a second while
// the port is still held.
func Up(s *httptest.Server) error {
	addr := s.Listener.Addr().String()
	var l net.Listener
	var err error
	for i := 0; i < 100; i++ {
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("listen again on %s: %w", addr, err)
	}
	s.Listener = l
	go s.Config.Serve(l)
	return nil
}

// TokenBatching is a TEI-like engine (text-embeddings-inference serving a
// cross-encoder): requests wait in a FIFO queue; the engine runs one batch
// at a time, taking requests from the queue while their tokens fit
// MaxBatchTokens (a request larger than that runs alone), and a batch of n
// tokens takes Base + PerToken·n. Latency grows with the tokens in the
// batch, so the best rate needs enough requests in flight to fill each
// batch and the next one waiting: at capacity it serves MaxBatchTokens
// tokens per Base + PerToken·MaxBatchTokens. With MaxInFlight (TEI's
// --max-concurrent-requests, 512 by default) a request beyond that is
// refused with TEI's 429. A request's tokens are Tokens of its body.
type TokenBatching struct {
	Base           time.Duration
	PerToken       time.Duration
	MaxBatchTokens int

	mu      sync.Mutex
	queue   []*tokenJob
	active  bool
	served  int64
	tokens  int64
	batches int64
}

type tokenJob struct {
	tokens int
	done   chan struct{}
}

// BestRate is the requests per second with full batches of requests of the
// mean size served so far (0 before any).
func (b *TokenBatching) BestRate() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.served == 0 {
		return 0
	}
	mean := float64(b.tokens) / float64(b.served)
	full := b.Base + time.Duration(b.MaxBatchTokens)*b.PerToken
	return float64(b.MaxBatchTokens) / mean / full.Seconds()
}

// MeanBatch is the mean requests per batch so far.
func (b *TokenBatching) MeanBatch() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batches == 0 {
		return 0
	}
	return float64(b.served) / float64(b.batches)
}

func (b *TokenBatching) serve(tokens int) {
	j := &tokenJob{tokens: max(tokens, 1), done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, j)
	if !b.active {
		b.active = true
		go b.loop()
	}
	b.mu.Unlock()
	<-j.done
}

// loop runs batches while there is work; it ends when the queue is empty.
func (b *TokenBatching) loop() {
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.active = false
			b.mu.Unlock()
			return
		}
		n, sum := 0, 0
		for n < len(b.queue) && (n == 0 || sum+b.queue[n].tokens <= b.MaxBatchTokens) {
			sum += b.queue[n].tokens
			n++
		}
		batch := append([]*tokenJob(nil), b.queue[:n]...)
		b.queue = b.queue[n:]
		b.served += int64(n)
		b.tokens += int64(sum)
		b.batches++
		b.mu.Unlock()
		time.Sleep(b.Base + time.Duration(sum)*b.PerToken)
		for _, j := range batch {
			close(j.done)
		}
	}
}
