package fakes

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"unicode"
)

// Embedder is a fake OpenAI-compatible POST /v1/embeddings server. Flavor
// "vllm" answers errors as vLLM's OpenAI server does ({"error":{"message",
// "type","param","code"}}, 400 for an input over the context); "tei" as Text
// Embeddings Inference's OpenAI route does ({"message","code","type"}; 413
// "Validation" for a batch over --max-client-batch-size or an input over
// --max-input-length, 429 "Overloaded" over capacity).
//
// The model is feature hashing of lower-cased words (with their prefix, so
// "query: " and "passage: " shift vectors as E5 does) into Dim dimensions,
// scaled by Scale and not normalised, so clients must normalise. Vectors
// depend only on the text.
type Embedder struct {
	*httptest.Server
	Flavor         string // vllm | tei
	Model          string
	Dim            int
	Scale          float64 // length of the answered vectors (default 3)
	APIKey         string  // if set, requests must carry "Authorization: Bearer APIKey"
	MaxClientBatch int     // TEI: inputs per request (default 32); vllm: 0, no limit
	MaxInputWords  int     // an input longer than this many words is refused (0: no limit)
	// Flavor "llamacpp" is llama-server --embeddings: an input over
	// PhysicalBatch tokens (-ub, 512 by default; counted by Tokens) fails
	// the whole request with HTTP 500 "input (N tokens) is too large to
	// process. increase the physical batch size", one over SlotContext (the
	// slot's share of -c) but within the batch with HTTP 400
	// exceed_context_size_error; errors in its {"error":{"code","message",
	// "type"}} shape; it names its own model whatever the request asks.
	PhysicalBatch int
	SlotContext   int
	Fault         Fault
	Inspect       func(body []byte)     // called with every request body
	Served        func(inputs []string) // called with the inputs of every successful answer
	Counter       Counter
	Inputs        atomic.Int64 // texts embedded
	Tokenized     atomic.Int64 // POST /tokenize requests (the flavor's form, at the server's root)
	Capacity
}

// NewEmbedder starts a fake of the given flavor ("vllm" or "tei").
func NewEmbedder(flavor, model string, dim int) *Embedder {
	f := &Embedder{Flavor: flavor, Model: model, Dim: dim, Scale: 3}
	if flavor == "tei" {
		f.MaxClientBatch = 32
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"object": "list", "data": []any{
			map[string]any{"id": f.Model, "object": "model", "created": 1700000000, "owned_by": f.Flavor},
		}})
	})
	mux.HandleFunc("POST /v1/embeddings", f.gate(f.embed, func(w http.ResponseWriter) {
		f.fail(w, 429, "Overloaded", "Model is overloaded")
	}))
	mux.HandleFunc("POST /tokenize", func(w http.ResponseWriter, r *http.Request) {
		form := map[string]string{"llamacpp": "llama.cpp", "vllm": "vllm", "tei": "tei"}[f.Flavor]
		tokenize(form, &f.Tokenized)(w, r)
	})
	f.Server = httptest.NewServer(mux)
	return f
}

// URL is the base URL a client is given (".../v1").
func (f *Embedder) URL() string { return f.Server.URL + "/v1" }

// fail writes the flavor's error body. TEI's ErrorType names are its
// variants (Validation, Overloaded, Tokenizer, Backend, Empty).
func (f *Embedder) fail(w http.ResponseWriter, status int, teiType, msg string) {
	if f.Flavor == "tei" {
		writeJSON(w, status, map[string]any{"message": msg, "code": status, "type": teiType})
		return
	}
	if f.Flavor == "llamacpp" {
		typ := map[int]string{400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 501: "not_supported_error"}[status]
		if typ == "" {
			typ = "server_error"
		}
		writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg, "type": typ}})
		return
	}
	typ := map[int]string{400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError", 429: "RateLimitError"}[status]
	if typ == "" {
		typ = "ServiceUnavailableError"
	}
	openAIError(w, status, typ, msg)
}

// Vector is the fake model's (unnormalised) embedding of text.
func (f *Embedder) Vector(text string) []float32 {
	v := make([]float64, f.Dim)
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) }) {
		h := fnv.New64a()
		h.Write([]byte(w))
		s := h.Sum64()
		sign := 1.0
		if s>>63 == 1 {
			sign = -1
		}
		v[int(s%uint64(f.Dim))] += sign
		v[int((s>>20)%uint64(f.Dim))] += sign * 0.5
	}
	var n float64
	for _, x := range v {
		n += x * x
	}
	out := make([]float32, f.Dim)
	if n == 0 {
		out[0] = float32(f.Scale)
		return out
	}
	for i, x := range v {
		out[i] = float32(x / math.Sqrt(n) * f.Scale)
	}
	return out
}

func (f *Embedder) embed(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	n := f.Counter.add(body)
	if f.Inspect != nil {
		f.Inspect(body)
	}
	if f.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+f.APIKey {
		f.fail(w, 401, "Validation", "Unauthorized")
		return
	}
	var req struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		EncodingFormat string          `json:"encoding_format"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		f.fail(w, 422, "Validation", "Failed to deserialize the JSON body into the target type: "+err.Error())
		return
	}
	if f.Flavor == "vllm" && req.Model != f.Model {
		f.fail(w, 404, "", fmt.Sprintf("The model `%s` does not exist.", req.Model))
		return
	}
	var inputs []string
	if err := json.Unmarshal(req.Input, &inputs); err != nil {
		var one string
		if err := json.Unmarshal(req.Input, &one); err != nil {
			f.fail(w, 422, "Validation", "input must be a string or an array of strings")
			return
		}
		inputs = []string{one}
	}
	if len(inputs) == 0 {
		f.fail(w, 400, "Empty", "`inputs` cannot be empty")
		return
	}
	if req.EncodingFormat != "" && req.EncodingFormat != "float" {
		f.fail(w, 400, "Validation", "the fake answers encoding_format float only")
		return
	}
	if f.MaxClientBatch > 0 && len(inputs) > f.MaxClientBatch {
		f.fail(w, 413, "Validation", fmt.Sprintf("batch size %d > maximum allowed batch size %d", len(inputs), f.MaxClientBatch))
		return
	}
	if f.Flavor == "llamacpp" {
		for _, in := range inputs {
			n := WindowTokens(in) + 2
			switch {
			case f.PhysicalBatch > 0 && n > f.PhysicalBatch:
				f.fail(w, 500, "", fmt.Sprintf("input (%d tokens) is too large to process. increase the physical batch size (current batch size: %d)", n, f.PhysicalBatch))
				return
			case f.SlotContext > 0 && n > f.SlotContext:
				writeJSON(w, 400, map[string]any{"error": map[string]any{"code": 400,
					"message": fmt.Sprintf("request (%d tokens) exceeds the available context size (%d tokens), try increasing it", n, f.SlotContext),
					"type":    "exceed_context_size_error", "n_prompt_tokens": n, "n_ctx": f.SlotContext}})
				return
			}
		}
	}
	tokens := 0
	for _, in := range inputs {
		nw := len(strings.Fields(in))
		if f.MaxInputWords > 0 && nw > f.MaxInputWords {
			if f.Flavor == "tei" {
				f.fail(w, 413, "Validation", fmt.Sprintf("Input validation error: `inputs` must have less than %d tokens. Given: %d", f.MaxInputWords, nw))
			} else {
				f.fail(w, 400, "", fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens in the input for embedding generation. Please reduce the length of the input.", f.MaxInputWords, nw))
			}
			return
		}
		tokens += nw + 2
	}
	data := make([]any, len(inputs))
	for i, in := range inputs {
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": f.Vector(in)}
	}
	// Items are named by their index, not their position: reverse them.
	for i, j := 0, len(data)-1; i < j; i, j = i+1, j-1 {
		data[i], data[j] = data[j], data[i]
	}
	model := req.Model
	if f.Flavor == "tei" || f.Flavor == "llamacpp" {
		model = f.Model // TEI and llama.cpp ignore the request's model and name their own
	}
	resp := map[string]any{"object": "list", "data": data, "model": model,
		"usage": map[string]any{"prompt_tokens": tokens, "total_tokens": tokens}}
	if f.Fault != nil && injectFault(w, f.Fault(n, body), resp, &f.Capacity) {
		return
	}
	f.Inputs.Add(int64(len(inputs)))
	writeJSON(w, 200, resp)
	if f.Served != nil {
		f.Served(inputs)
	}
}
