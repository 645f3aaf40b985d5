package httpx

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Expect is what a caller knows of the answer to one request: how large it
// can honestly be and what it must look like. A client that decodes an
// answer sets it with WithExpect on the request's context, so that the
// HTTP layer reads no more than the answer can need and treats an answer
// that does not decode like any other failed attempt of that request.
type Expect struct {
	// MaxBytes caps the answer body (0: Options.MaxBody). A 2xx answer
	// over it is malformed; an error answer over it is cut (its message
	// is at the start).
	MaxBytes int64
	// What names the answer for messages ("chat completion with n=1,
	// max_tokens=50").
	What string
	// Check decodes a 2xx body; an error makes the answer malformed. It
	// runs once per attempt, on the goroutine that called Do.
	Check func(body []byte) error
}

type expectKey struct{}

// WithExpect returns ctx carrying e for the requests made with it.
func WithExpect(ctx context.Context, e Expect) context.Context {
	return context.WithValue(ctx, expectKey{}, e)
}

func expectOf(ctx context.Context) Expect {
	e, _ := ctx.Value(expectKey{}).(Expect)
	return e
}

// DefaultMaxBody caps an answer whose request set no Expect.MaxBytes: 64 MiB,
// above any answer synthq asks for with its default settings (the largest,
// an embeddings batch of 64 texts at 8,192 dimensions written as JSON
// numbers, is about 17 MiB; see embed.AnswerLimit).
const DefaultMaxBody = 64 << 20

// maxErrorBody caps what is read of an error answer: its message is at the
// start.
const maxErrorBody = 1 << 20

// malformedRetries is how often a request whose answers are malformed is
// sent again (at most MaxRetries) before it fails.
const malformedRetries = 3

// malformedConfigAfter is how many malformed answers, with no well-formed
// one before them, make the run's server misconfigured: several requests'
// worth, so that one unlucky request cannot stop a run.
const malformedConfigAfter = 3 * (malformedRetries + 1)

// malformedError is a 2xx answer that is over its size limit or that the
// request's Expect.Check refuses.
type malformedError struct {
	what    string // the request's Expect.What
	reason  string
	excerpt string // the start of the body, for the server's words
	err     error
}

func (e *malformedError) Error() string {
	s := e.reason
	if e.excerpt != "" {
		s += "; the server answered: " + e.excerpt
	}
	return s
}

func (e *malformedError) Unwrap() error { return e.err }

// excerpt is the start of an answer body for a message: at most 200 bytes,
// cut at a character boundary.
func excerpt(b []byte) string {
	s := strings.TrimSpace(string(b[:min(len(b), 400)]))
	if len(s) > 200 {
		i := 200
		for i > 0 && !utf8Start(s[i]) {
			i--
		}
		s = s[:i] + "…"
	}
	return s
}

func utf8Start(c byte) bool { return c&0xC0 != 0x80 }

// MalformedHint is what to check when every answer of role's server is
// malformed.
func MalformedHint(role string) string {
	switch role {
	case "llm":
		return `every answer so far was malformed: --llm-url must be an OpenAI-compatible server's base URL (ending in /v1) whose POST /chat/completions answers {"choices":[{"index":0,"message":{"content":...}}]}; a proxy or another kind of server answers otherwise`
	case "teacher":
		return `every answer so far was malformed: check that --teacher-api matches the server (tei: POST /rerank answering [{"index","score"}]; cohere: POST /v1/rerank answering {"results":[{"index","relevance_score"}]}; vllm-score: POST /score answering {"data":[{"index","score"}]})`
	case "embed":
		return `every answer so far was malformed: --embed-url must be an OpenAI-compatible embeddings server whose POST /v1/embeddings answers {"data":[{"index","embedding":[numbers]}]}`
	}
	return "every answer so far was malformed: check the server's URL and kind"
}

// malformedFault is the fault of a request whose answers stayed malformed:
// Item while the role's server answers other requests well, Config once it
// has answered nothing well (ok: whether that point is reached).
func (c *Client) malformedFault(url string, tries int, m *malformedError) (f *Fault, ok bool) {
	if c.wellFormed.Load() > 0 {
		return &Fault{Kind: Item, Role: c.opts.Role, URL: url, Err: m,
			Msg: fmt.Sprintf("answer malformed %d times while the server answered other requests well: %v", tries, m)}, true
	}
	if n := c.malformed.Load(); n >= malformedConfigAfter {
		return &Fault{Kind: Config, Role: c.opts.Role, URL: url, Err: m,
			Msg:  fmt.Sprintf("all %d answers so far were malformed: %v", n, m),
			Hint: MalformedHint(c.opts.Role)}, true
	}
	return nil, false
}

// IsMalformed reports whether err is (or wraps) a malformed answer.
func IsMalformed(err error) bool {
	var m *malformedError
	return errors.As(err, &m)
}
