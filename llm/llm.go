// Package llm is the client of OpenAI-compatible chat completions servers
// (vLLM, Ollama, llama.cpp server, TGI, hosted APIs) that writes the
// synthetic queries, and the offline generator that writes extractive ones
// with no server. The generate stage consumes them through its Generator
// interface; retries, scheduling and the error taxonomy are internal/httpx's.
package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"

	openai "github.com/sashabaranov/go-openai"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/internal/redact"
	"github.com/synthq/synthq/internal/tokens"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/prompts"
)

// Request is one chat request for one query slot.
type Request struct {
	Messages    []prompts.Message
	Type        string
	Passage     string // the (cut) passage, for generators that read it directly
	Seed        int
	N           int // choices wanted in one request (0 or 1: one)
	Temperature float64
	TopP        float64
	MaxTokens   int
}

// ItemError is a failure of one unit of work that must not stop the run (a
// 400 "context length exceeded", retries exhausted): the item is recorded as
// failed with its reason.
type ItemError struct{ Err error }

func (e *ItemError) Error() string { return e.Err.Error() }
func (e *ItemError) Unwrap() error { return e.Err }

// OpenAI talks to any OpenAI-compatible chat completions server
// (vLLM, Ollama, llama.cpp server, TGI, hosted APIs) through go-openai.
type OpenAI struct {
	client *openai.Client
	model  string
	url    string
	// Log receives the warnings about what the server's answers show
	// (silent prompt truncation, another model than asked), each once.
	Log       io.Writer
	warnTrunc sync.Once
	warnModel sync.Once
}

// NewOpenAI returns a generator for the server at baseURL (".../v1").
// doer carries retries and backoff (an *httpx.Client).
func NewOpenAI(baseURL, model, apiKey string, doer openai.HTTPDoer) *OpenAI {
	cfg := openai.DefaultConfig(apiKey)
	cfg.BaseURL = strings.TrimRight(baseURL, "/")
	if doer != nil {
		cfg.HTTPClient = doer
	}
	return &OpenAI{client: openai.NewClientWithConfig(cfg), model: model, url: cfg.BaseURL}
}

// Generate sends one chat completion. Temperature and top_p of 0 reach the
// server as 0 through the HTTP layer's extra body keys (go-openai drops zero
// values); see ExtraBody.
func (g *OpenAI) Generate(ctx context.Context, req Request) ([]dataset.Answer, error) {
	msgs := make([]openai.ChatCompletionMessage, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = openai.ChatCompletionMessage{Role: m.Role, Content: m.Content}
	}
	seed := req.Seed
	n := 0
	if req.N > 1 {
		n = req.N
	}
	ctx = httpx.WithExpect(ctx, httpx.Expect{MaxBytes: AnswerLimit(max(n, 1), req.MaxTokens),
		What: fmt.Sprintf("a chat completion with n=%d, max_tokens=%d", max(n, 1), req.MaxTokens), Check: checkAnswer})
	resp, err := g.client.CreateChatCompletion(ctx, openai.ChatCompletionRequest{
		Model:       g.model,
		Messages:    msgs,
		MaxTokens:   req.MaxTokens,
		Temperature: float32(req.Temperature),
		TopP:        float32(req.TopP),
		Seed:        &seed,
		N:           n,
	})
	if err != nil {
		return nil, g.classify(ctx, err)
	}
	if err := validAnswer(&resp); err != nil {
		return nil, &ItemError{fmt.Errorf("llm: answer malformed: %w", err)}
	}
	// Choices are ordered by their index field, not by position.
	out := make([]dataset.Answer, len(resp.Choices))
	for _, ch := range resp.Choices {
		out[ch.Index] = dataset.Answer{Content: ch.Message.Content, FinishReason: string(ch.FinishReason), Model: resp.Model}
	}
	out[0].PromptTokens = resp.Usage.PromptTokens
	out[0].CompletionTokens = resp.Usage.CompletionTokens
	if est, ok := UnderReportedCompletion(resp.Usage.CompletionTokens, out); ok {
		out[0].CompletionTokens = est
		out[0].CompletionEstimated = true
	}
	if est := promptEstimate(req.Messages); PromptTruncated(resp.Usage.PromptTokens, est) {
		out[0].PromptTruncated = true
		g.warnTrunc.Do(func() {
			g.warn("warning: the LLM server reports %d prompt tokens for a prompt of about %d: it seems to cut prompts without an error (Ollama does above its num_ctx: raise it, e.g. OLLAMA_CONTEXT_LENGTH=8192); answers so marked are counted as prompt_truncated in stats and the manifest\n",
				resp.Usage.PromptTokens, est)
		})
	}
	if resp.Model != "" && !SameModel(g.model, resp.Model) {
		g.warnModel.Do(func() {
			g.warn("warning: asked the LLM server for model %q, it answered as %q (llama.cpp serves the model it loaded whatever the name); check --llm-model and --llm-url; counted as answers_model_mismatch\n",
				g.model, resp.Model)
		})
	}
	return out, nil
}

// AnswerLimit is the most an honest chat completion of n choices of at
// most maxTokens tokens (0: 32,768) can weigh: 1 MiB for the envelope (id,
// usage, llama.cpp's timings, and its echo of the prompt when started with
// --verbose; prompts are cut to --max-passage-chars) plus 256 bytes per
// token per choice (Llama 3's longest tokens are under 128 bytes, and a
// \uXXXX escape of a control character is 6 bytes per byte of text: 256
// covers any token of up to 42 such bytes). n=1 at 50 tokens: 1.01 MiB. A
// larger answer is malformed and is not read.
func AnswerLimit(n, maxTokens int) int64 {
	if maxTokens <= 0 {
		maxTokens = 32768
	}
	return 1<<20 + int64(max(n, 1))*int64(maxTokens)*256
}

// maxUsage is the largest token count an answer may report: far above any
// model's window; more is a broken server, and would overflow the sums of
// tokens and cost.
const maxUsage = 1 << 30

// checkAnswer is the HTTP layer's check of a 2xx chat answer
// (httpx.Expect): it decodes as go-openai will and passes validAnswer.
func checkAnswer(b []byte) error {
	var r openai.ChatCompletionResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("not a chat completion: %w", err)
	}
	return validAnswer(&r)
}

// validAnswer refuses an answer with no choices, with a choice index out
// of range or repeated, or with token counts below 0 or above maxUsage.
func validAnswer(r *openai.ChatCompletionResponse) error {
	if len(r.Choices) == 0 {
		return errors.New("no choices")
	}
	seen := make([]bool, len(r.Choices))
	for _, ch := range r.Choices {
		if ch.Index < 0 || ch.Index >= len(seen) || seen[ch.Index] {
			return fmt.Errorf("choice index %d (of %d choices)", ch.Index, len(seen))
		}
		seen[ch.Index] = true
	}
	for name, v := range map[string]int{"prompt_tokens": r.Usage.PromptTokens, "completion_tokens": r.Usage.CompletionTokens, "total_tokens": r.Usage.TotalTokens} {
		if v < 0 || v > maxUsage {
			return fmt.Errorf("usage.%s %d out of range", name, v)
		}
	}
	return nil
}

func (g *OpenAI) warn(format string, args ...any) {
	if g.Log != nil {
		fmt.Fprintf(g.Log, format, args...)
	}
}

// promptEstimate is tokens.Estimate over the messages plus 4 per message.
func promptEstimate(msgs []prompts.Message) int {
	n := 0
	for _, m := range msgs {
		n += tokens.Estimate(m.Content) + tokens.PerMessage
	}
	return n
}

// PromptTruncated reports a prompt the server says it read far less of than
// was sent: reported prompt tokens below half of the estimate (tokens.Estimate
// errs high by 10-20% on English, so an honest count is never that low; a
// server that cut the prompt to its window, as Ollama does silently above
// num_ctx, reports the window). 0 (not reported) is not truncation.
func PromptTruncated(reported, estimate int) bool {
	return reported > 0 && reported*2 < estimate
}

// UnderReportedCompletion applies the documented rule for servers that
// honour n but count one choice in usage (llama.cpp): with two or more
// choices, each estimated at tokens.Estimate of its text + 1 (its end token),
// a reported count no larger than 1.25 times the largest choice's estimate
// is one choice's worth, and each choice is then counted at its estimate:
// the sum is returned with ok. An honest total counts every choice, so it
// exceeds that unless one choice is more than three times all the others
// together (then the report is kept: under-counting is possible, never
// over-counting); the estimate errs high by 10-20% for English.
func UnderReportedCompletion(reported int, ans []dataset.Answer) (estimate int, ok bool) {
	if len(ans) < 2 {
		return 0, false
	}
	largest := 0
	for _, a := range ans {
		e := tokens.Estimate(a.Content) + 1
		estimate += e
		largest = max(largest, e)
	}
	return estimate, reported*4 <= largest*5
}

// SameModel reports whether the model a server answered as is the one asked
// for: equal ignoring case, or one a prefix of the other (hosted APIs answer
// "gpt-4o-2024-08-06" for "gpt-4o"), or equal after the last "/" (an
// organisation prefix dropped).
func SameModel(asked, answered string) bool {
	a, b := strings.ToLower(asked), strings.ToLower(answered)
	if a == b || strings.HasPrefix(a, b) || strings.HasPrefix(b, a) {
		return true
	}
	base := func(s string) string { return s[strings.LastIndex(s, "/")+1:] }
	return base(a) == base(b)
}

// classify turns a go-openai error (*openai.APIError or *openai.RequestError,
// depending on the server) into an *httpx.Fault through httpx.Classify: an
// Item fault is wrapped in *ItemError (the slot is recorded failed), a Config
// fault carries its hint (and, for an unknown model, the server's models) and
// stops the run, an Endpoint fault (down after the HTTP layer's retries) is
// returned as it is.
func (g *OpenAI) classify(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var hf *httpx.Fault
	if errors.As(err, &hf) {
		if hf.Kind == httpx.Item {
			return &ItemError{fmt.Errorf("llm: %w", hf)}
		}
		return hf // an outage past --max-outage, or a misconfiguration: the run stops
	}
	if errors.Is(err, httpx.ErrStopped) {
		return err
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var apiE *openai.APIError
	var reqE *openai.RequestError
	if (errors.As(err, &syn) || errors.As(err, &typ)) && !errors.As(err, &apiE) && !errors.As(err, &reqE) {
		// go-openai could not decode a 2xx answer (a Doer that is not
		// an *httpx.Client, which checks answers before): the item's.
		return &ItemError{&httpx.Fault{Kind: httpx.Item, Role: "llm", URL: redact.URL(g.url), Msg: "answer malformed: " + err.Error(), Err: err}}
	}
	status, msg := 0, ""
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	switch {
	case errors.As(err, &apiErr):
		status, msg = apiErr.HTTPStatusCode, apiErr.Message
	case errors.As(err, &reqErr):
		status = reqErr.HTTPStatusCode
		if len(reqErr.Body) > 0 {
			msg = httpx.ErrorText(reqErr.Body)
		}
	}
	f := &httpx.Fault{Role: "llm", URL: redact.URL(g.url), Status: status, Msg: msg, Err: err}
	if status == 0 {
		f.Kind = httpx.Endpoint
		return f
	}
	if msg == "" {
		f.Msg = err.Error()
	}
	f.Kind = httpx.Classify(status, f.Msg)
	switch f.Kind {
	case httpx.Item:
		return &ItemError{f}
	case httpx.Config:
		f.Hint = httpx.ConfigHint("llm", status, f.Msg)
		if httpx.ModelMissing(status, f.Msg) {
			f.Hint += fmt.Sprintf(" (asked for %q%s)", g.model, g.listModels(ctx))
		}
	}
	return f
}

func (g *OpenAI) listModels(ctx context.Context) string {
	ml, err := g.client.ListModels(ctx)
	if err != nil || len(ml.Models) == 0 {
		return ""
	}
	var ids []string
	for _, m := range ml.Models {
		ids = append(ids, m.ID)
	}
	return "; the server offers: " + strings.Join(ids, ", ")
}

// Offline writes extractive pseudo-queries with no server: random
// spans cropped from the passage (as in unsupervised contrastive
// pre-training), shaped per type: a few words for titles, up to five
// comma-separated words for keywords, longer spans otherwise. The span is
// drawn with the request's seed, so answers depend only on the request.
type Offline struct{}

// Generate answers req with max(req.N, 1) answers; choice i uses seed
// req.Seed+i.
func (Offline) Generate(ctx context.Context, req Request) ([]dataset.Answer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]dataset.Answer, max(req.N, 1))
	for i := range out {
		out[i] = offlineAnswer(req, req.Seed+i)
	}
	return out, nil
}

func offlineAnswer(req Request, seed int) dataset.Answer {
	words := strings.Fields(req.Passage)
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	var out string
	switch {
	case len(words) == 0:
	case req.Type == "keywords":
		var kws []string
		seen := map[string]bool{}
		for tries := 0; tries < 40 && len(kws) < 2+r.IntN(4); tries++ {
			w := strings.Trim(words[r.IntN(len(words))], ".,;:()[]\"'")
			if len(w) > 3 && !seen[strings.ToLower(w)] {
				seen[strings.ToLower(w)] = true
				kws = append(kws, w)
			}
		}
		out = strings.Join(kws, ", ")
	default:
		lo, hi := 5, 10
		if req.Type == "titles" {
			lo, hi = 3, 6
		}
		n := min(lo+r.IntN(hi-lo+1), len(words))
		start := r.IntN(len(words) - n + 1)
		out = strings.Join(words[start:start+n], " ")
	}
	toks := len(strings.Fields(out))
	return dataset.Answer{Content: out, FinishReason: "stop", Model: "offline", CompletionTokens: toks}
}

// ExtraBody is the set of keys merged into every chat request body:
// temperature and top_p (so that 0 reaches the server as 0; go-openai drops
// zero values) and the user's --llm-extra keys (cfg.LLMExtra), which win.
func ExtraBody(cfg *pipeline.Config) map[string]any {
	extra := map[string]any{"temperature": cfg.Temperature, "top_p": cfg.TopP}
	for k, v := range cfg.LLMExtra {
		extra[k] = v
	}
	return extra
}

// ChatTokenCost estimates what one chat completions request body costs
// against a tokens-per-minute limit: the prompt estimate plus max_tokens for
// each of the n choices. It is cheap (one JSON decode) and never fails: a
// body it cannot read costs 0.
func ChatTokenCost(body []byte) int {
	var req struct {
		Messages []struct {
			Content string `json:"content"`
		} `json:"messages"`
		MaxTokens int `json:"max_tokens"`
		N         int `json:"n"`
	}
	if json.Unmarshal(body, &req) != nil {
		return 0
	}
	total := 0
	for _, m := range req.Messages {
		total += tokens.Estimate(m.Content) + tokens.PerMessage
	}
	return total + req.MaxTokens*max(req.N, 1)
}
