package tokenize

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/internal/redact"
)

// Server counts tokens with a model server's own tokenizer, through the
// POST /tokenize route that llama.cpp's llama-server, vLLM and Hugging Face
// TEI offer at their root (beside /v1): the exact count a window cut needs,
// with no tokenizer.json to find. The request forms, without special tokens
// (the window's Reserve accounts for those):
//
//   - llama.cpp: {"content": text} → {"tokens": [ids]}
//   - vLLM: {"model", "prompt": text, "add_special_tokens": false} →
//     {"count": n, "tokens": [ids], "max_model_len": m}
//   - TEI: {"inputs": text, "add_special_tokens": false} →
//     [[{"id", "text", "special", "start", "stop"}]]
//
// The first count finds which form the server takes by sending a short
// probe text in each (llama.cpp answers any body, with no tokens when it
// lacks "content", so an answer counts only if it has tokens); a server
// that takes none (no route: a hosted API, Infinity, Ollama) is a
// misconfiguration, with the server's words and a hint. Requests go
// through the role's HTTP client (its retries, limits and balancing over
// the fleet). Counts of whole texts are remembered (16 bytes of hash and 4
// of count a text, at most MaxRemembered), so a passage met in many
// candidate lists is counted once. Safe for concurrent use.
type Server struct {
	url, shown, apiKey, model, role string
	doer                            httpx.Doer

	mu    sync.Mutex
	form  *form // nil until a probe found it
	cache map[[16]byte]int32
}

// MaxRemembered bounds the counts a Server remembers (~60 MB at most);
// past it the memory is cleared and refilled.
const MaxRemembered = 1 << 21

// probeText is what a probe counts: any server's tokenizer makes tokens of
// it.
const probeText = "synthq counts tokens"

// NewServer counts through base's /tokenize (base: the server's URL as
// given to synthq; a trailing /v1 is dropped) with d, as role's requests
// ("teacher", "embed"); model is sent where the form names one (vLLM).
func NewServer(d httpx.Doer, base, apiKey, model, role string) *Server {
	root := strings.TrimSuffix(strings.TrimRight(base, "/"), "/v1")
	u := root + "/tokenize"
	return &Server{url: u, shown: redact.URL(u), apiKey: apiKey, model: model, role: role, doer: d,
		cache: map[[16]byte]int32{}}
}

// form is one server's request and answer shape.
type form struct {
	name string
	body func(model, text string) any
}

var forms = []form{
	{"llama.cpp", func(_, text string) any {
		return struct {
			Content string `json:"content"`
		}{text}
	}},
	{"vllm", func(model, text string) any {
		return struct {
			Model            string `json:"model,omitempty"`
			Prompt           string `json:"prompt"`
			AddSpecialTokens bool   `json:"add_special_tokens"`
		}{model, text, false}
	}},
	{"tei", func(_, text string) any {
		return struct {
			Inputs           string `json:"inputs"`
			AddSpecialTokens bool   `json:"add_special_tokens"`
		}{text, false}
	}},
}

// Form names the form the server took ("" before the first count).
func (s *Server) Form() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.form == nil {
		return ""
	}
	return s.form.name
}

// Count is text's number of tokens by the server's tokenizer, special
// tokens left out. Cost: one request, none for a text counted before. Its
// errors are the HTTP client's faults (*httpx.Fault: an endpoint down, a
// misconfiguration) or ctx's.
func (s *Server) Count(ctx context.Context, text string) (int, error) {
	sum := sha256.Sum256([]byte(text))
	var key [16]byte
	copy(key[:], sum[:16])
	s.mu.Lock()
	n, ok := s.cache[key]
	f := s.form
	s.mu.Unlock()
	if ok {
		return int(n), nil
	}
	if f == nil {
		var err error
		if f, err = s.probe(ctx); err != nil {
			return 0, err
		}
	}
	c, err := s.send(ctx, f, text)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	if len(s.cache) >= MaxRemembered {
		clear(s.cache)
	}
	s.cache[key] = int32(c)
	s.mu.Unlock()
	return c, nil
}

// probe finds the form the server takes: the first whose answer to the
// probe text has tokens. An endpoint fault (the server down) is returned
// as it is, to be waited out like any request; a server that takes no form
// is a Config fault.
func (s *Server) probe(ctx context.Context) (*form, error) {
	var words []string
	said := map[string]bool{}
	say := func(w string) {
		if !said[w] {
			said[w] = true
			words = append(words, w)
		}
	}
	for i := range forms {
		n, err := s.send(ctx, &forms[i], probeText)
		var f *httpx.Fault
		switch {
		case err == nil && n > 0:
			s.mu.Lock()
			s.form = &forms[i]
			s.mu.Unlock()
			return &forms[i], nil
		case err == nil:
			say("no tokens in " + forms[i].name + "'s form")
		case errors.As(err, &f) && f.Kind != httpx.Endpoint && f.Status != 0:
			say(fmt.Sprintf("HTTP %d: %s", f.Status, f.Msg))
		case errors.As(err, &f) && f.Kind != httpx.Endpoint:
			say(f.Msg)
		default:
			return nil, err
		}
	}
	return nil, &httpx.Fault{Kind: httpx.Config, Role: s.role, URL: s.shown,
		Msg:  "the server counts no tokens at POST /tokenize in any form synthq knows (" + strings.Join(words, "; ") + ")",
		Hint: "--" + s.role + "-tokenizer server needs llama.cpp's llama-server, vLLM or TEI (their /tokenize route); give the model's tokenizer.json instead, or leave the flag out for the estimate"}
}

// send counts text in form f.
func (s *Server) send(ctx context.Context, f *form, text string) (int, error) {
	body, err := json.Marshal(f.body(s.model, text))
	if err != nil {
		return 0, fmt.Errorf("encoding a tokenize request: %w", err)
	}
	var n int
	err = httpx.PostChecked(ctx, s.doer, s.url, s.shown, s.apiKey, s.role, body, httpx.Expect{
		// The largest form (TEI) writes ~100 bytes a token, a token
		// being at least one byte of text (escaped: up to 6).
		MaxBytes: 1<<20 + 600*int64(len(text)),
		What:     "tokenize answer",
		Check: func(b []byte) error {
			c, err := decodeCount(b)
			n = c
			return err
		},
	})
	return n, err
}

// decodeCount reads a /tokenize answer of any of the three forms: a
// "count", else the length of "tokens", else TEI's list of token objects
// (the first input's), special tokens left out.
func decodeCount(b []byte) (int, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0, errors.New("empty tokenize answer")
	}
	if b[0] == '{' {
		var o struct {
			Count  *int              `json:"count"`
			Tokens []json.RawMessage `json:"tokens"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return 0, fmt.Errorf("decoding a tokenize answer: %w", err)
		}
		switch {
		case o.Count != nil && *o.Count >= 0:
			return *o.Count, nil
		case o.Tokens != nil:
			return len(o.Tokens), nil
		}
		return 0, errors.New(`tokenize answer has neither "count" nor "tokens"`)
	}
	type token struct {
		Special bool `json:"special"`
	}
	var outer []json.RawMessage
	if err := json.Unmarshal(b, &outer); err != nil {
		return 0, fmt.Errorf("decoding a tokenize answer: %w", err)
	}
	toks := outer
	if len(outer) > 0 && bytes.HasPrefix(bytes.TrimSpace(outer[0]), []byte("[")) {
		if err := json.Unmarshal(outer[0], &toks); err != nil {
			return 0, fmt.Errorf("decoding a tokenize answer: %w", err)
		}
	}
	n := 0
	for _, raw := range toks {
		var t token
		if err := json.Unmarshal(raw, &t); err != nil {
			return 0, fmt.Errorf("decoding a tokenize answer's token: %w", err)
		}
		if !t.Special {
			n++
		}
	}
	return n, nil
}
