package httpx

import (
	"context"
	"sync"
	"time"
)

// Bucket is a token bucket that lets callers go into debt: Reserve always
// succeeds and returns how long the caller must wait before acting, so a
// request larger than the bucket still goes through once the bucket would
// have refilled. Rate is tokens per second; the bucket holds at most one
// second's worth (or one token), so limits are smooth rather than bursty.
type Bucket struct {
	mu     sync.Mutex
	rate   float64
	cap    float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

// NewBucket returns a full bucket refilling perMinute tokens a minute; nil
// when perMinute <= 0 (no limit).
func NewBucket(perMinute float64, now func() time.Time) *Bucket {
	if perMinute <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	rate := perMinute / 60
	c := max(rate, 1)
	return &Bucket{rate: rate, cap: c, tokens: c, last: now(), now: now}
}

// Reserve takes n tokens and returns the wait before they are available.
// It costs one lock and a few float operations.
func (b *Bucket) Reserve(n float64) time.Duration {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.now()
	if el := t.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(b.cap, b.tokens+el*b.rate)
		b.last = t
	}
	b.tokens -= n
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// Refund gives back n tokens reserved by a caller that gave up waiting.
func (b *Bucket) Refund(n float64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.tokens = min(b.cap, b.tokens+n)
	b.mu.Unlock()
}

// Limiter caps requests per minute and tokens per minute, shared by every
// attempt of every request of a client (retries count: a server's limit
// counts them too). A nil *Limiter does not limit.
type Limiter struct {
	Requests *Bucket
	Tokens   *Bucket
}

// NewLimiter returns a limiter for rpm requests and tpm tokens a minute (0:
// unlimited); nil when both are 0.
func NewLimiter(rpm, tpm float64) *Limiter {
	if rpm <= 0 && tpm <= 0 {
		return nil
	}
	return &Limiter{Requests: NewBucket(rpm, nil), Tokens: NewBucket(tpm, nil)}
}

// Wait blocks until one request of the given token cost may start, or ctx
// ends (the reservation is then refunded).
func (l *Limiter) Wait(ctx context.Context, tokens int) error {
	if l == nil {
		return nil
	}
	d := max(l.Requests.Reserve(1), l.Tokens.Reserve(float64(tokens)))
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		l.Requests.Refund(1)
		l.Tokens.Refund(float64(tokens))
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
