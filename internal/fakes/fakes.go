// Package fakes holds in-process servers that speak the real protocols the
// tests exercise: OpenAI chat completions (as vLLM answers them), TEI
// /rerank, the Cohere-style /v1/rerank and vLLM's /score. Their answers depend
// only on the request, so a resumed run can be compared byte for byte with an
// uninterrupted one. Failures are injected per request by a Fault function.
package fakes

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// Fault decides how the n-th request (1-based, counted per server) fails:
// "" (no fault), "429" (Retry-After: 1), "500", "503", "html" (200 with an HTML
// body), "truncated" (200 with JSON cut in half), "reset" (the connection is
// reset without an answer), "hang" (no answer for 2 s, past a short client
// timeout), "400-context" (vLLM's context-length error), "400-max-tokens"
// (the LLM only: OpenAI's 400 unsupported_parameter for max_tokens), and
// the hostile answers "huge", "malformed", "nan", "absurd", "denormal" and
// "zero" (see hostile.go).
type Fault func(n int64, body []byte) string

// Counter records how often each distinct request body was received.
type Counter struct {
	mu     sync.Mutex
	bodies map[string]int
	total  atomic.Int64
}

func (c *Counter) add(body []byte) int64 {
	sum := sha256.Sum256(body)
	k := hex.EncodeToString(sum[:])
	c.mu.Lock()
	if c.bodies == nil {
		c.bodies = map[string]int{}
	}
	c.bodies[k]++
	c.mu.Unlock()
	return c.total.Add(1)
}

// Total is the number of requests received.
func (c *Counter) Total() int64 { return c.total.Load() }

// Repeated is the number of requests whose identical body had been received before.
func (c *Counter) Repeated() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.bodies {
		n += v - 1
	}
	return n
}

// Count is how many times this exact body has been received.
func (c *Counter) Count(body []byte) int {
	sum := sha256.Sum256(body)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bodies[hex.EncodeToString(sum[:])]
}

// Bodies returns the set of distinct request bodies' hashes.
func (c *Counter) Bodies() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.bodies))
	for k, v := range c.bodies {
		out[k] = v
	}
	return out
}

// LLM is a fake OpenAI-compatible chat completions server.
type LLM struct {
	*httptest.Server
	Model   string
	APIKey  string // if set, requests must carry "Authorization: Bearer APIKey"
	Fault   Fault
	OnServe func(n int64)     // called after each successful answer
	Inspect func(body []byte) // called with every request body
	Counter Counter
	// Answer overrides the answer text (default: a question built from the passage).
	Answer func(qtype, passage string, seed int) string
	// NMode is how the n parameter is treated: "" honours it as vLLM does
	// (choice i answers as seed+7919·i would), "ignore" answers one choice as Ollama
	// does, "reject" refuses n > 1 with llama.cpp's old 400, "one-usage"
	// honours n as llama.cpp does now (up to its -np slots) but counts one
	// choice's completion tokens in usage.
	NMode string
	// ServedModel, when set, is the model the server has loaded: it answers
	// any model name, naming this one (llama.cpp serves its GGUF whatever
	// the request asks for).
	ServedModel string
	// PromptCap > 0 cuts prompts to that many tokens without an error and
	// reports them as read, as Ollama does above its num_ctx.
	PromptCap int
	Capacity
}

// Capacity models a server's speed: every answer takes Latency, and with
// MaxInFlight > 0 a request beyond that many at once is refused as the real
// server refuses it when overloaded (vLLM behind a proxy: 503; TEI: 429
// "Model is overloaded"), counted in Refused. Batching replaces Latency
// with a continuous-batching engine, and RateLimit puts a hosted API's
// requests-per-minute limit in front (see load.go).
type Capacity struct {
	Latency     time.Duration
	MaxInFlight int64
	// RetryAfter, when set, is sent as "Retry-After" (whole seconds) on
	// the refusals beyond MaxInFlight, as gateways and proxies in front of a
	// slot server send it on a refusal at capacity.
	RetryAfter time.Duration
	Batching   *Batching
	// TokenBatching replaces Latency with a TEI-like engine that runs one
	// batch at a time, filled up to a token budget, taking longer the more
	// tokens it holds (see load.go).
	TokenBatching *TokenBatching
	RateLimit     *RateLimit
	inFlight      atomic.Int64
	Refused       atomic.Int64
	// Completed counts answers written back (after the latency), refusals
	// excluded.
	Completed atomic.Int64
	// HugeSent counts the padding bytes written by "huge" answers (see
	// Hostile answers).
	HugeSent atomic.Int64
}

// InFlight is the number of requests the fake holds now.
func (c *Capacity) InFlight() int64 { return c.inFlight.Load() }

// gate serves h within the capacity: a request over the rate limit gets
// the limit's 429, one beyond MaxInFlight gets refuse; an admitted one is
// answered Latency after it arrived (the fake's own work counts inside the
// latency, as a real server's does), or when its batch has run its steps.
func (c *Capacity) gate(h http.HandlerFunc, refuse func(http.ResponseWriter)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if l := c.RateLimit; l != nil {
			ok, remaining, wait, reset := l.take()
			if !ok {
				c.Refused.Add(1)
				l.refuse(w, wait, reset)
				return
			}
			l.headers(w.Header(), remaining, reset)
		}
		if cur := c.inFlight.Add(1); c.MaxInFlight > 0 && cur > c.MaxInFlight {
			c.inFlight.Add(-1)
			c.Refused.Add(1)
			if c.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(c.RetryAfter.Seconds()))))
			}
			refuse(w)
			return
		}
		defer c.inFlight.Add(-1)
		var cost int
		if c.TokenBatching != nil {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			cost = Tokens(string(body))
		}
		if c.Latency <= 0 && c.Batching == nil && c.TokenBatching == nil {
			h(w, r)
			c.Completed.Add(1)
			return
		}
		rec := httptest.NewRecorder()
		h(rec, r)
		switch {
		case c.Batching != nil:
			c.Batching.serve()
		case c.TokenBatching != nil:
			c.TokenBatching.serve(cost)
		default:
			time.Sleep(c.Latency - time.Since(start))
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		c.Completed.Add(1)
	}
}

// NewLLM starts a fake serving model.
// Each configure function runs before the server starts (set Latency or a
// Fault there when the server is used by another process: a field set after
// the start races with the handlers).
func NewLLM(model string, configure ...func(*LLM)) *LLM {
	f := &LLM{Model: model}
	for _, c := range configure {
		c(f)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", f.models)
	mux.HandleFunc("POST /v1/chat/completions", f.gate(f.chat, func(w http.ResponseWriter) {
		openAIError(w, 503, "ServiceUnavailableError", "server overloaded")
	}))
	f.Server = httptest.NewServer(mux)
	return f
}

// URL is the base URL a client is given (".../v1").
func (f *LLM) URL() string { return f.Server.URL + "/v1" }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// openAIError is the error body vLLM's OpenAI server sends.
func openAIError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": status}})
}

func (f *LLM) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{"object": "list", "data": []any{
		map[string]any{"id": f.Model, "object": "model", "created": 1700000000, "owned_by": "vllm", "max_model_len": 131072},
	}})
}

// injectFault writes the injected failure, if any, and reports whether it did.
func injectFault(w http.ResponseWriter, fault string, ok any, c *Capacity) bool {
	if hostile(w, fault, ok, c) {
		return true
	}
	switch fault {
	case "":
		return false
	case "429":
		w.Header().Set("Retry-After", "1")
		openAIError(w, 429, "RateLimitError", "Too many requests")
	case "500":
		openAIError(w, 500, "InternalServerError", "internal error")
	case "503":
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(503)
		io.WriteString(w, "Service Unavailable")
	case "html":
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(200)
		io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1></body></html>")
	case "truncated":
		b, _ := json.Marshal(ok)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		w.Write(b[:len(b)/2])
	case "reset":
		if hj, isHJ := w.(http.Hijacker); isHJ {
			if conn, _, err := hj.Hijack(); err == nil {
				if tc, isTCP := conn.(interface{ SetLinger(int) error }); isTCP {
					tc.SetLinger(0) // RST, not FIN
				}
				conn.Close()
				return true
			}
		}
		w.WriteHeader(500) // behind a recorder (latency set): the closest failure
	case "hang":
		time.Sleep(2 * time.Second)
		w.WriteHeader(504)
	default:
		return false
	}
	return true
}

func (f *LLM) chat(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	n := f.Counter.add(body)
	if f.Inspect != nil {
		f.Inspect(body)
	}
	if f.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+f.APIKey {
		openAIError(w, 401, "AuthenticationError", "Unauthorized")
		return
	}
	var req struct {
		Model       string   `json:"model"`
		Temperature *float64 `json:"temperature"`
		MaxTokens   int      `json:"max_tokens"`
		Seed        *int     `json:"seed"`
		N           int      `json:"n"`
		Messages    []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		openAIError(w, 400, "BadRequestError", "invalid JSON: "+err.Error())
		return
	}
	answerModel := f.Model
	switch {
	case f.ServedModel != "":
		answerModel = f.ServedModel
	case req.Model != f.Model:
		openAIError(w, 404, "NotFoundError", fmt.Sprintf("The model `%s` does not exist.", req.Model))
		return
	}
	if len(req.Messages) == 0 {
		openAIError(w, 400, "BadRequestError", "messages must not be empty")
		return
	}
	user := req.Messages[len(req.Messages)-1].Content
	passage := lastPassage(user)
	fault := ""
	if f.Fault != nil {
		fault = f.Fault(n, body)
	}
	if fault == "400-max-tokens" {
		// OpenAI's answer to max_tokens for its reasoning models.
		writeJSON(w, 400, map[string]any{"error": map[string]any{
			"message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
			"type":    "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}})
		return
	}
	if fault == "400-context" {
		openAIError(w, 400, "BadRequestError", "This model's maximum context length is 131072 tokens. However, you requested 140000 tokens (139950 in the messages, 50 in the completion). Please reduce the length of the messages or completion.")
		return
	}
	seed := 0
	if req.Seed != nil {
		seed = *req.Seed
	}
	nChoices := max(req.N, 1)
	switch {
	case nChoices > 1 && f.NMode == "reject":
		writeJSON(w, 400, map[string]any{"error": map[string]any{"code": 400,
			"message": "Illegal param: only one completion choice is allowed", "type": "invalid_request_error"}})
		return
	case f.NMode == "ignore":
		nChoices = 1
	}
	qtype := typeOf(user)
	var choices []any
	completion := 0
	for i := 0; i < nChoices; i++ {
		answer := DefaultAnswer(qtype, passage, seed+i*7919)
		if f.Answer != nil {
			answer = f.Answer(qtype, passage, seed+i*7919)
		}
		if f.NMode == "one-usage" && i > 0 {
			completion = 0 // llama.cpp's usage is the last choice's
		}
		completion += Tokens(answer) + 1
		choices = append(choices, map[string]any{"index": i, "message": map[string]any{"role": "assistant", "content": answer, "tool_calls": []any{}},
			"logprobs": nil, "finish_reason": "stop", "stop_reason": nil})
	}
	// A choice is named by its index field, not its position: the fake
	// reverses them to check that clients read the index.
	if len(choices) > 1 {
		choices[0], choices[len(choices)-1] = choices[len(choices)-1], choices[0]
	}
	prompt := 0
	for _, m := range req.Messages {
		prompt += Tokens(m.Content) + 5
	}
	prompt += 25 // Llama 3.1's template: begin, assistant header, date lines
	if f.PromptCap > 0 && prompt > f.PromptCap {
		prompt = f.PromptCap
	}
	resp := map[string]any{
		"id": "chatcmpl-" + fmt.Sprint(seed), "object": "chat.completion", "created": 1700000000, "model": answerModel,
		"choices": choices,
		"usage": map[string]any{"prompt_tokens": prompt, "completion_tokens": completion,
			"total_tokens": prompt + completion},
	}
	if injectFault(w, fault, resp, &f.Capacity) {
		return
	}
	writeJSON(w, 200, resp)
	if f.OnServe != nil {
		f.OnServe(n)
	}
}

func words(b []byte) int { return len(strings.Fields(string(b))) }

// Tokens is the fake models' tokenizer: a token per 4.5 bytes, rounded up,
// near what Llama 3's and BERT's vocabularies make of English prose.
func Tokens(text string) int { return (len(text)*2 + 8) / 9 }

// WindowTokens is what the fake servers count against their window
// (PhysicalBatch, MaxTokens): Tokens, plus a token for every character of a
// word made only of punctuation, as a WordPiece or BPE vocabulary splits
// ". . . . 394" (a table of contents) into a token per dot. Prose counts the
// same as Tokens; a table of contents ~2.5 bytes a token, so a cut by
// tokens.Encoder (3 bytes a token) is over the window, as against the real
// llama-server (617 tokens for 512 estimated).
func WindowTokens(text string) int {
	n := Tokens(text)
	for _, w := range strings.Fields(text) {
		if strings.IndexFunc(w, func(r rune) bool { return !unicode.IsPunct(r) }) < 0 {
			n += len(w)
		}
	}
	return n
}

// lastPassage extracts the passage the prompt asks about (after the last "Passage:").
func lastPassage(user string) string {
	i := strings.LastIndex(user, "Passage:")
	if i < 0 {
		return user
	}
	p := user[i+len("Passage:"):]
	if j := strings.LastIndex(p, "\n"); j >= 0 {
		p = p[:j]
	}
	return strings.TrimSpace(p)
}

func typeOf(user string) string {
	switch {
	case strings.HasSuffix(user, "Question:"):
		return "questions"
	case strings.HasSuffix(user, "Claim:"):
		return "claims"
	case strings.HasSuffix(user, "Title:"):
		return "titles"
	case strings.HasSuffix(user, "Keywords:"):
		return "keywords"
	}
	return "query"
}

// DefaultAnswer writes what an instruct model might: sometimes a preamble,
// then a query made of distinctive passage words.
func DefaultAnswer(qtype, passage string, seed int) string {
	var ws []string
	for _, w := range strings.FieldsFunc(passage, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) }) {
		if len(w) > 4 {
			ws = append(ws, strings.ToLower(w))
		}
	}
	if len(ws) == 0 {
		return "What is this about?"
	}
	pick := func(i int) string { return ws[(seed/7+i*5)%len(ws)] }
	var q string
	switch qtype {
	case "keywords":
		q = strings.Join([]string{pick(0), pick(1), pick(2)}, ", ")
	case "claims":
		q = fmt.Sprintf("The %s affects %s and %s.", pick(0), pick(1), pick(2))
	case "titles":
		q = fmt.Sprintf("%s and %s", pick(0), pick(1))
	default:
		q = fmt.Sprintf("how does %s relate to %s %s?", pick(0), pick(1), pick(2))
	}
	if seed%3 == 0 {
		return "Here is a " + qtype + " based on the passage:\n\n\"" + q + "\"\n\nThis query targets the main topic of the passage."
	}
	return q
}

// Reranker is a fake cross-encoder server speaking one of the three APIs.
type Reranker struct {
	*httptest.Server
	API            string // tei | cohere | vllm-score
	Model          string
	MaxClientBatch int // TEI refuses larger batches (413); default 32
	// Flavor "llamacpp" is llama-server: its /v1/rerank (and /rerank)
	// return raw logits as relevance_score, and a (query, document) pair over
	// MaxTokens fails the whole request with its HTTP 500.
	Flavor string
	// MaxTokens > 0 is the cross-encoder's window (llama.cpp: -ub, 512 by
	// default): query, document and 4 special tokens counted by Tokens.
	MaxTokens int
	// NoRerank answers every rerank route with llama-server's 501 when it
	// was started without --reranking (a chat or embeddings server).
	NoRerank bool
	Fault    Fault
	Counter  Counter
	Pairs    atomic.Int64
	// Tokenized counts POST /tokenize requests: llama-server's form for
	// Flavor "llamacpp", TEI's for API "tei", vLLM's for "vllm-score";
	// a hosted Cohere-style API has no such route (404).
	Tokenized atomic.Int64
	Inspect   func(body []byte) // called with every request body
	Capacity
}

// NewReranker starts a fake for api ("tei", "cohere" or "vllm-score").
// Each configure function runs before the server starts.
func NewReranker(api, model string, configure ...func(*Reranker)) *Reranker {
	f := &Reranker{API: api, Model: model, MaxClientBatch: 32}
	for _, c := range configure {
		c(f)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	mux.HandleFunc("POST /rerank", f.gated(f.tei))
	mux.HandleFunc("POST /v1/rerank", f.gated(f.cohere))
	mux.HandleFunc("POST /score", f.gated(f.score))
	mux.HandleFunc("POST /tokenize", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case f.Flavor == "llamacpp":
			tokenize("llama.cpp", &f.Tokenized)(w, r)
		case f.API == "tei":
			tokenize("tei", &f.Tokenized)(w, r)
		case f.API == "vllm-score":
			tokenize("vllm", &f.Tokenized)(w, r)
		default:
			http.NotFound(w, r)
		}
	})
	f.Server = httptest.NewServer(mux)
	return f
}

// gated applies the server's Capacity: TEI refuses with 429 and its
// "Overloaded" error body, the others with 503.
func (f *Reranker) gated(h http.HandlerFunc) http.HandlerFunc {
	inner := func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if f.Inspect != nil {
			f.Inspect(body)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if f.NoRerank {
			f.Counter.add(body)
			writeJSON(w, 501, map[string]any{"error": map[string]any{"code": 501,
				"message": "This server does not support reranking. Start it with `--reranking`", "type": "not_supported_error"}})
			return
		}
		if f.MaxTokens > 0 {
			var req struct {
				Query     string   `json:"query"`
				Texts     []string `json:"texts"`
				Documents []string `json:"documents"`
			}
			json.Unmarshal(body, &req)
			for _, d := range append(req.Texts, req.Documents...) {
				if n := WindowTokens(req.Query) + WindowTokens(d) + 4; n > f.MaxTokens {
					f.Counter.add(body)
					writeJSON(w, 500, map[string]any{"error": map[string]any{"code": 500,
						"message": fmt.Sprintf("input (%d tokens) is too large to process. increase the physical batch size (current batch size: %d)", n, f.MaxTokens),
						"type":    "server_error"}})
					return
				}
			}
		}
		h(w, r)
	}
	return f.gate(inner, func(w http.ResponseWriter) {
		if f.API == "tei" {
			writeJSON(w, 429, map[string]any{"error": "Model is overloaded", "error_type": "Overloaded"})
		} else {
			openAIError(w, 503, "ServiceUnavailableError", "server overloaded")
		}
	})
}

// Score is the fake model: word overlap with the query, like a lexical
// cross-encoder, in logit-like units.
func Score(query, passage string) float64 {
	q := strings.Fields(strings.ToLower(query))
	p := strings.ToLower(passage)
	s := -4.0
	for _, w := range q {
		w = strings.Trim(w, ".,?!\"'")
		if len(w) > 2 && strings.Contains(p, w) {
			s += 2
		}
	}
	return s + float64(len(passage)%7)/100
}

// Sigmoid is what vLLM's and Cohere's rerank APIs return for a
// cross-encoder's logit: a probability.
func Sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func sigmoid(x float64) float64 { return Sigmoid(x) }

type result struct {
	Index int
	Score float64
}

func (f *Reranker) rank(query string, docs []string) []result {
	out := make([]result, len(docs))
	for i, d := range docs {
		out[i] = result{i, Score(query, d)}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Score > out[b].Score })
	f.Pairs.Add(int64(len(docs)))
	return out
}

func (f *Reranker) tei(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	n := f.Counter.add(body)
	var req struct {
		Query     string   `json:"query"`
		Texts     []string `json:"texts"`
		RawScores bool     `json:"raw_scores"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, 422, map[string]any{"error": "Failed to deserialize the JSON body into the target type", "error_type": "Validation"})
		return
	}
	if len(req.Texts) == 0 {
		writeJSON(w, 400, map[string]any{"error": "`texts` cannot be empty", "error_type": "Empty"})
		return
	}
	if len(req.Texts) > f.MaxClientBatch {
		writeJSON(w, 413, map[string]any{"error": fmt.Sprintf("batch size %d > maximum allowed batch size %d", len(req.Texts), f.MaxClientBatch), "error_type": "Validation"})
		return
	}
	var res []map[string]any
	for _, x := range f.rank(req.Query, req.Texts) {
		res = append(res, map[string]any{"index": x.Index, "score": x.Score})
	}
	if f.Fault != nil && injectFault(w, f.Fault(n, body), res, &f.Capacity) {
		return
	}
	writeJSON(w, 200, res)
}

func (f *Reranker) cohere(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	n := f.Counter.add(body)
	var req struct {
		Model     string   `json:"model"`
		Query     string   `json:"query"`
		Documents []string `json:"documents"`
		TopN      int      `json:"top_n"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		openAIError(w, 400, "BadRequestError", err.Error())
		return
	}
	var res []map[string]any
	for _, x := range f.rank(req.Query, req.Documents) {
		score := sigmoid(x.Score) // vLLM, Cohere: probabilities
		if f.Flavor == "llamacpp" {
			score = x.Score // llama.cpp: raw logits
		}
		res = append(res, map[string]any{"index": x.Index, "document": map[string]any{"text": req.Documents[x.Index]}, "relevance_score": score})
	}
	if req.TopN > 0 && req.TopN < len(res) {
		res = res[:req.TopN]
	}
	out := map[string]any{"id": "rerank-1", "model": f.Model, "usage": map[string]any{"total_tokens": words(body)}, "results": res}
	if f.Fault != nil && injectFault(w, f.Fault(n, body), out, &f.Capacity) {
		return
	}
	writeJSON(w, 200, out)
}

func (f *Reranker) score(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	n := f.Counter.add(body)
	var req struct {
		Model string   `json:"model"`
		Text1 string   `json:"text_1"`
		Text2 []string `json:"text_2"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		openAIError(w, 400, "BadRequestError", err.Error())
		return
	}
	var data []map[string]any
	for i, d := range req.Text2 {
		data = append(data, map[string]any{"index": i, "object": "score", "score": sigmoid(Score(req.Text1, d))})
	}
	f.Pairs.Add(int64(len(req.Text2)))
	out := map[string]any{"id": "score-1", "object": "list", "created": 1700000000, "model": f.Model, "data": data, "usage": map[string]any{"prompt_tokens": words(body)}}
	if f.Fault != nil && injectFault(w, f.Fault(n, body), out, &f.Capacity) {
		return
	}
	writeJSON(w, 200, out)
}
