package stages

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"

	openai "github.com/sashabaranov/go-openai"

	"github.com/synthq/synthq/prompts"
)

// GenRequest is one chat request for one query slot.
type GenRequest struct {
	Messages    []prompts.Message
	Type        string
	Passage     string // the (cut) passage, for generators that read it directly
	Seed        int
	Temperature float64
	TopP        float64
	MaxTokens   int
}

// Generator answers one chat request. Implementations are safe for
// concurrent use.
type Generator interface {
	Generate(ctx context.Context, req GenRequest) (Answer, error)
}

// ItemError is a failure of one unit of work that must not stop the run (a
// 400 "context length exceeded", retries exhausted): the item is recorded as
// failed with its reason.
type ItemError struct{ Err error }

func (e *ItemError) Error() string { return e.Err.Error() }
func (e *ItemError) Unwrap() error { return e.Err }

// OpenAIGenerator talks to any OpenAI-compatible chat completions server
// (vLLM, Ollama, llama.cpp server, TGI, hosted APIs) through go-openai.
type OpenAIGenerator struct {
	client *openai.Client
	model  string
	url    string
}

// NewOpenAIGenerator returns a generator for the server at baseURL (".../v1").
// doer carries retries and backoff (an *httpx.Client).
func NewOpenAIGenerator(baseURL, model, apiKey string, doer openai.HTTPDoer) *OpenAIGenerator {
	cfg := openai.DefaultConfig(apiKey)
	cfg.BaseURL = strings.TrimRight(baseURL, "/")
	if doer != nil {
		cfg.HTTPClient = doer
	}
	return &OpenAIGenerator{client: openai.NewClientWithConfig(cfg), model: model, url: cfg.BaseURL}
}

// Generate sends one chat completion. Temperature and top_p of 0 reach the
// server as 0 through the HTTP layer's extra body keys (go-openai drops zero
// values); see LLMExtraBody.
func (g *OpenAIGenerator) Generate(ctx context.Context, req GenRequest) (Answer, error) {
	msgs := make([]openai.ChatCompletionMessage, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = openai.ChatCompletionMessage{Role: m.Role, Content: m.Content}
	}
	seed := req.Seed
	resp, err := g.client.CreateChatCompletion(ctx, openai.ChatCompletionRequest{
		Model:       g.model,
		Messages:    msgs,
		MaxTokens:   req.MaxTokens,
		Temperature: float32(req.Temperature),
		TopP:        float32(req.TopP),
		Seed:        &seed,
	})
	if err != nil {
		return Answer{}, g.classify(ctx, err)
	}
	if len(resp.Choices) == 0 {
		return Answer{}, &ItemError{fmt.Errorf("llm: answer has no choices")}
	}
	return Answer{
		Content:          resp.Choices[0].Message.Content,
		FinishReason:     string(resp.Choices[0].FinishReason),
		Model:            resp.Model,
		PromptTokens:     resp.Usage.PromptTokens,
		CompletionTokens: resp.Usage.CompletionTokens,
	}, nil
}

// classify turns a go-openai error (*openai.APIError or *openai.RequestError,
// depending on the server) into an item failure or a fatal error with advice.
func (g *OpenAIGenerator) classify(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	status, msg := 0, err.Error()
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	switch {
	case errors.As(err, &apiErr):
		status, msg = apiErr.HTTPStatusCode, apiErr.Message
	case errors.As(err, &reqErr):
		status = reqErr.HTTPStatusCode
		if len(reqErr.Body) > 0 {
			msg = strings.TrimSpace(string(reqErr.Body))
		}
	}
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("llm %s: HTTP %d: %s: check the API key (--llm-api-key or SYNTHQ_LLM_API_KEY)", g.url, status, msg)
	case http.StatusNotFound:
		return fmt.Errorf("llm %s: HTTP 404: %s: model %q not found%s", g.url, msg, g.model, g.listModels(ctx))
	case 0:
		return &ItemError{fmt.Errorf("llm: %w", err)}
	}
	return &ItemError{fmt.Errorf("llm: HTTP %d: %s", status, msg)}
}

func (g *OpenAIGenerator) listModels(ctx context.Context) string {
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

// OfflineGenerator writes extractive pseudo-queries with no server: random
// spans cropped from the passage (as in unsupervised contrastive
// pre-training), shaped per type: a few words for titles, up to five
// comma-separated words for keywords, longer spans otherwise. The span is
// drawn with the request's seed, so answers depend only on the request.
type OfflineGenerator struct{}

// Generate implements Generator.
func (OfflineGenerator) Generate(ctx context.Context, req GenRequest) (Answer, error) {
	if err := ctx.Err(); err != nil {
		return Answer{}, err
	}
	words := strings.Fields(req.Passage)
	r := rand.New(rand.NewPCG(uint64(req.Seed), 0x5eed))
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
	return Answer{Content: out, FinishReason: "stop", Model: "offline", CompletionTokens: toks}, nil
}
