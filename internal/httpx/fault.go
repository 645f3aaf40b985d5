package httpx

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/synthq/synthq/internal/redact"
)

// Kind says whose fault a failed request is. Every client (chat, teacher,
// embeddings) classifies its failures through Classify, so that the three
// kinds are never confused:
//
//   - Endpoint: the server's trouble (refused or reset connections, DNS,
//     timeouts, 5xx, overload). The request is waited out and retried; the
//     item is never marked failed for it.
//   - Item: the answer is about this input (context length, one text
//     refused, content policy). The item fails with the server's words and
//     the run goes on.
//   - Config: a misconfiguration (bad key, unsupported route, wrong model,
//     or the same refusal for every item). The run stops at once with the
//     server's message and a hint.
type Kind uint8

// The kinds of Fault.
const (
	Endpoint Kind = iota + 1
	Item
	Config
)

func (k Kind) String() string {
	switch k {
	case Endpoint:
		return "endpoint"
	case Item:
		return "item"
	case Config:
		return "config"
	}
	return "unknown"
}

// Fault is a classified failure of one request. Msg is the server's own
// words (ErrorText of its body) or the transport error; URL has no
// credentials.
type Fault struct {
	Kind   Kind
	Role   string // "llm", "teacher", "embed"
	URL    string
	Status int // 0: no HTTP answer
	Msg    string
	Hint   string // what to do about it (Config faults)
	Err    error  // the underlying error, if any
}

func (f *Fault) Error() string {
	var b strings.Builder
	if f.Role != "" {
		b.WriteString(f.Role)
		b.WriteString(" ")
	}
	if f.URL != "" {
		b.WriteString(redact.URL(f.URL))
		b.WriteString(": ")
	}
	if f.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d: ", f.Status)
	}
	msg := f.Msg
	if msg == "" && f.Err != nil {
		msg = f.Err.Error()
	}
	b.WriteString(redact.Text(msg))
	if f.Hint != "" {
		b.WriteString("\n  hint: ")
		b.WriteString(f.Hint)
	}
	return b.String()
}

func (f *Fault) Unwrap() error { return f.Err }

// KindOf returns the Kind of the first Fault in err's chain, or 0.
func KindOf(err error) Kind {
	var f *Fault
	if errors.As(err, &f) {
		return f.Kind
	}
	return 0
}

// Classify returns the kind of a final HTTP answer from its status and its
// message (ErrorText of the body). The message wins over the status where a
// server says more than its status code: llama.cpp answers an embedding
// input over its batch with HTTP 500 "input (654 tokens) is too large to
// process", which is about the item, and TEI answers overload with 429
// "Model is overloaded", which is the endpoint's.
func Classify(status int, msg string) Kind {
	switch {
	case status >= 200 && status < 300:
		return 0
	case TooLong(msg):
		return Item
	case Overloaded(status, msg):
		return Endpoint
	case status == http.StatusUnauthorized, status == http.StatusForbidden,
		status == http.StatusNotFound, status == http.StatusMethodNotAllowed,
		status == http.StatusNotImplemented:
		return Config
	case status == http.StatusRequestTimeout || status >= 500 || status == 0:
		return Endpoint
	}
	return Item
}

// Overloaded reports an answer that asks the client to slow down: 429, 503,
// or a body that says the model is overloaded (TEI) or busy.
func Overloaded(status int, msg string) bool {
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		return true
	}
	m := strings.ToLower(msg)
	return status >= 400 && (strings.Contains(m, "overloaded") || strings.Contains(m, "rate limit") ||
		strings.Contains(m, "server is busy") || strings.Contains(m, "too many requests"))
}

// tooLongPhrases are what servers say when an input exceeds their window
// (lower case): vLLM/OpenAI "maximum context length", "This model's maximum
// context length is", llama.cpp "exceed_context_size_error", "the request
// exceeds the available context size", "input (N tokens) is too large to
// process", "is too large to process. increase the physical batch size",
// TEI "must have less than 512 tokens", "Input validation error", Ollama
// "input length exceeds", and generic "too long".
var tooLongPhrases = []string{
	"context length", "context_length", "context size", "exceed_context_size",
	"too large to process", "physical batch size", "must have less than",
	"input length exceeds", "too long", "maximum input length", "exceeds the maximum",
	"input is too large", "tokens exceeds", "prompt is too long",
	"input is larger than the max context", "maximum sequence length",
}

// TooLong reports whether a server's message says an input exceeds its
// window, whatever the status it came with. A batch refused for its size
// (BatchTooLarge) is not an input too long.
func TooLong(msg string) bool {
	if batchTooLarge(msg) {
		return false
	}
	m := strings.ToLower(msg)
	for _, p := range tooLongPhrases {
		if strings.Contains(m, p) {
			return true
		}
	}
	return false
}

// BatchTooLarge reports an answer that refuses a request for the number of
// inputs it carries, not for any one input: TEI's 413/422 "batch size 64 >
// maximum allowed batch size 32" (--max-client-batch-size). llama.cpp's
// per-input "input (654 tokens) is too large to process. increase the
// physical batch size" names a batch size too, but is about one input: it is
// TooLong, not this.
func BatchTooLarge(status int, msg string) bool {
	if status < 400 || status >= 500 {
		return false
	}
	return batchTooLarge(msg)
}

func batchTooLarge(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "batch size") && !strings.Contains(m, "physical batch size") &&
		!strings.Contains(m, "too large to process") &&
		(strings.Contains(m, "maximum allowed") || strings.Contains(m, ">") || strings.Contains(m, "max_client_batch_size"))
}

// RouteMissing reports a 404 (or 405) about the path, not the model: Ollama
// and Go servers answer "404 page not found", llama.cpp {"error":{"message":
// "File Not Found"}}, FastAPI (vLLM) {"detail":"Not Found"}, proxies an HTML
// page. A URL missing its /v1, or a server without the route, answers so.
func RouteMissing(status int, msg string) bool {
	if status == http.StatusMethodNotAllowed {
		return true
	}
	if status != http.StatusNotFound {
		return false
	}
	return !ModelMissing(status, msg)
}

// ModelMissing reports a 404 that names the model: vLLM "The model `x` does
// not exist.", Ollama "model \"x\" not found, try pulling it first", OpenAI
// "The model `x` does not exist or you do not have access to it."
func ModelMissing(status int, msg string) bool {
	if status != http.StatusNotFound {
		return false
	}
	m := strings.ToLower(msg)
	if strings.Contains(m, "page not found") || strings.Contains(m, "file not found") ||
		strings.Contains(m, "<html") || strings.Contains(m, "<!doctype") {
		return false
	}
	return strings.Contains(m, "model")
}

// ConfigHint returns advice for a misconfiguration answer of role (one of
// "llm", "teacher", "embed"): which flag carries the key, that a URL may be
// missing its /v1, that a server lacks the route.
func ConfigHint(role string, status int, msg string) string {
	flag := map[string]string{"llm": "llm", "teacher": "teacher", "embed": "embed"}[role]
	if flag == "" {
		flag = role
	}
	m := strings.ToLower(msg)
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Sprintf("check the API key (--%s-api-key or SYNTHQ_%s_API_KEY)", flag, strings.ToUpper(flag))
	case strings.Contains(m, "support reranking") || (role == "teacher" && status == http.StatusNotImplemented):
		return "this server cannot rerank: --teacher-url must point at a cross-encoder (TEI, vLLM with a reranker, or llama-server started with --reranking and a reranker GGUF), not a chat or embeddings server"
	case strings.Contains(m, "support embeddings") || (role == "embed" && status == http.StatusNotImplemented):
		return "this server cannot embed: --embed-url must point at an embeddings server (llama-server needs --embeddings)"
	case status == http.StatusNotImplemented || strings.Contains(m, "not support"):
		return fmt.Sprintf("this server cannot do the %s's job; check --%s-url (and the server's start flags)", role, flag)
	case ModelMissing(status, msg):
		return fmt.Sprintf("the server does not know this model; check --%s-model", flag)
	case role == "teacher" && RouteMissing(status, msg):
		return "the server has no such route: check --teacher-url (a bare address, no /v1) and --teacher-api (tei: POST /rerank, cohere: POST /v1/rerank, vllm-score: POST /score, which vLLM serves only for score models)"
	case RouteMissing(status, msg):
		return fmt.Sprintf("the server has no such route; check --%s-url (OpenAI-compatible servers want the base URL ending in /v1)", flag)
	}
	return "every request so far got this same refusal; check the settings for this server"
}
