// Package teacher holds the cross-encoder teachers: the HTTP clients (TEI /rerank, the Cohere-style /v1/rerank shared by
// vLLM, Infinity, Jina and Cohere, and vLLM's /score), plus an offline
// lexical teacher for trying the flow without a server.
package teacher

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/synthq/synthq/internal/batch"
	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/internal/window"
)

// Config configures an HTTP scorer.
type Config struct {
	API    string // tei | cohere | vllm-score
	URL    string // server base URL, e.g. http://localhost:8080
	Model  string
	APIKey string     // sent as "Authorization: Bearer"; never logged
	Batch  int        // passages per request (default 32)
	Doer   httpx.Doer // default http.DefaultClient
	// Window cuts each passage so that the query and the passage fit the
	// cross-encoder's window together (zero value: no cut). TEI's truncate
	// is sent too, but llama.cpp and vLLM ignore it: the cut is ours.
	Window window.Cutter
}

// APIs lists the supported --teacher-api values.
var APIs = []string{"tei", "cohere", "vllm-score"}

// New returns the HTTP scorer for cfg.API.
func New(cfg Config) (*Client, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = 32
	}
	if cfg.Doer == nil {
		cfg.Doer = http.DefaultClient
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.URL == "" {
		return nil, fmt.Errorf("teacher: no URL given")
	}
	h := &Client{cfg: cfg}
	h.batch = batch.NewSize(cfg.Batch)
	switch cfg.API {
	case "tei":
		h.path, h.kind, h.encode, h.decode = "/rerank", "logits", encodeTEI, decodeTEI
	case "cohere":
		h.path, h.kind, h.encode, h.decode = "/v1/rerank", "relevance", encodeCohere, decodeCohere
	case "vllm-score":
		h.path, h.kind, h.encode, h.decode = "/score", "relevance", encodeVLLMScore, decodeVLLMScore
	default:
		return nil, fmt.Errorf("teacher: unknown API %q (known: %s)", cfg.API, strings.Join(APIs, ", "))
	}
	return h, nil
}

// Client scores passages against a query through one of the rerank APIs.
// Safe for concurrent use; it splits long lists into batches itself.
type Client struct {
	cfg     Config
	path    string
	kind    string
	outside atomic.Bool  // a score outside [0, 1] was seen
	batch   *batch.Size  // shrinks when the server refuses a batch as too large
	recut   atomic.Int64 // passages scored after being cut again
	encode  func(model, query string, docs []string) any
	decode  func(body []byte) ([]indexed, error)
}

type indexed struct {
	Index int
	Score float64
}

// ScoreKind is the API's kind ("logits" for TEI with raw_scores), except
// that a "relevance" API (Cohere-style /v1/rerank, vLLM /score) seen
// returning a score outside [0, 1] is "logits": llama.cpp's /v1/rerank
// returns raw logits where vLLM and Cohere return probabilities, and the API
// alone cannot tell them apart.
func (h *Client) ScoreKind() string {
	if h.kind == "relevance" && h.outside.Load() {
		return "logits"
	}
	return h.kind
}

func (h *Client) observe(scores []float32) {
	for _, s := range scores {
		if s < 0 || s > 1 {
			h.outside.Store(true)
			return
		}
	}
}

// Score scores passages in batches of the configured size (see
// ScorePartial); a passage the server refuses even alone makes the whole
// call fail with an *httpx.Fault of kind Item.
func (h *Client) Score(ctx context.Context, query string, passages []string) ([]float32, error) {
	scores, refused, err := h.ScorePartial(ctx, query, passages)
	if err != nil {
		return nil, err
	}
	for i := range passages {
		if msg, ok := refused[i]; ok {
			return nil, &httpx.Fault{Kind: httpx.Item, Role: "teacher", URL: h.cfg.URL + h.path, Msg: fmt.Sprintf("passage %d: %s", i, msg)}
		}
	}
	return scores, nil
}

// ScorePartial cuts each passage to the window (Config.Window, the query's
// tokens counted against it), splits passages into batches of the
// configured size and scores them in order. If the server refuses a batch as
// too large (httpx.BatchTooLarge: TEI above its --max-client-batch-size), the
// batch is halved and the smaller size kept for later calls. A batch refused
// for its content (an httpx.Item fault: a message saying an input is too
// long, whatever the status, llama.cpp's 500 and 400 exceed_context_size_error
// included) is split until the refused passages stand alone; one refused
// alone as too long is cut again from the count the server states
// (window.Cutter.Recut) and scored again, at most window.MaxRecuts times
// (CutAgain counts those that then passed); those still refused are
// reported in refused and the others scored. Config faults (bad key, a server
// that cannot rerank, a missing route) and Endpoint faults are errors.
func (h *Client) ScorePartial(ctx context.Context, query string, passages []string) ([]float32, map[int]string, error) {
	if h.cfg.Window.MaxTokens > 0 {
		used, err := h.cfg.Window.Tokens(ctx, query)
		if err != nil {
			return nil, nil, err
		}
		cut := make([]string, len(passages))
		for i, p := range passages {
			if cut[i], _, err = h.cfg.Window.Cut(ctx, p, used); err != nil {
				return nil, nil, err
			}
		}
		passages = cut
	}
	out := make([]float32, len(passages))
	refused, err := batch.Run(len(passages), h.batch, func(lo, hi int) error {
		scores, err := h.call(ctx, query, passages[lo:hi])
		if err == nil {
			copy(out[lo:hi], scores)
		}
		return err
	}, func(i int, msg string) (string, error) {
		return h.again(ctx, query, passages[i], out[i:i+1], msg)
	})
	if err != nil {
		return nil, nil, err
	}
	return out, refused, nil
}

// CutAgain is the number of passages scored after being cut again (see
// ScorePartial).
func (h *Client) CutAgain() int64 { return h.recut.Load() }

// again cuts passage again after the server refused its pair with query as
// too long (msg, the server's words: where they state its count, the cut
// scales by it; see window.Cutter.Recut) and scores it alone, at most
// window.MaxRecuts times. It stores the score in out[0] and returns "" on
// success, or the server's last words when the pair is still refused (or
// refused for another reason, or no window is set); err is for what is not
// the item's.
func (h *Client) again(ctx context.Context, query, passage string, out []float32, msg string) (string, error) {
	msg, err := batch.Again(msg, func(msg string) (bool, error) {
		used, err := h.cfg.Window.Tokens(ctx, query)
		if err != nil {
			return false, err
		}
		cut, ok, err := h.cfg.Window.Recut(ctx, passage, used, msg)
		passage = cut
		return ok, err
	}, func() error {
		scores, err := h.call(ctx, query, []string{passage})
		if err == nil {
			out[0] = scores[0]
		}
		return err
	})
	if err == nil && msg == "" {
		h.recut.Add(1)
	}
	return msg, err
}

// AnswerLimit is the most an honest rerank answer for docs can weigh: 1 MiB
// for the envelope (id, model, usage) plus, per passage, 256 bytes for its
// result object and 3 times its text, for servers that echo each document
// back (vLLM's and Jina's /v1/rerank do) with every non-ASCII character
// written as a \uXXXX escape (Python's json.dumps). 32 passages of 2 KB:
// 1.2 MiB. A larger answer is malformed and is not read.
func AnswerLimit(docs []string) int64 {
	n := int64(1 << 20)
	for _, d := range docs {
		n += 256 + 3*int64(len(d))
	}
	return n
}

// call sends one batch. An answer that does not decode (it misses or
// repeats an index, or a score is null or not a finite float32) is
// malformed: the HTTP layer (an *httpx.Client) asks again and classifies it
// (httpx.Expect); with another Doer it is asked again twice here and then
// fails the batch as an Item fault.
func (h *Client) call(ctx context.Context, query string, docs []string) ([]float32, error) {
	body, err := json.Marshal(h.encode(h.cfg.Model, query, docs))
	if err != nil {
		return nil, fmt.Errorf("teacher %s: encode request: %w", h.cfg.API, err)
	}
	url := h.cfg.URL + h.path
	var got []float32
	check := func(b []byte) error {
		res, err := h.decode(b)
		if err == nil {
			got, err = byIndex(res, len(docs))
		}
		if err != nil {
			got = nil
			return fmt.Errorf("teacher %s: %w", h.cfg.API, err)
		}
		return nil
	}
	err = httpx.PostChecked(ctx, h.cfg.Doer, url, url, h.cfg.APIKey, "teacher", body,
		httpx.Expect{MaxBytes: AnswerLimit(docs),
			What: fmt.Sprintf("a rerank answer for %d passages", len(docs)), Check: check})
	if err != nil {
		return nil, err
	}
	h.observe(got)
	return got, nil
}

// byIndex maps results back to input order by their index, never by their
// position in the answer (servers sort by score). A score that is not a
// finite float32 (1e300 is +Inf as a float32) is an error.
func byIndex(res []indexed, n int) ([]float32, error) {
	out := make([]float32, n)
	seen := make([]bool, n)
	for _, r := range res {
		if r.Index < 0 || r.Index >= n {
			return nil, fmt.Errorf("index %d out of range for %d passages", r.Index, n)
		}
		if seen[r.Index] {
			return nil, fmt.Errorf("index %d appears twice", r.Index)
		}
		seen[r.Index] = true
		s := float32(r.Score)
		if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
			return nil, fmt.Errorf("score %g at index %d is not a finite float32", r.Score, r.Index)
		}
		out[r.Index] = s
	}
	for i, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("no score for index %d of %d", i, n)
		}
	}
	return out, nil
}

func encodeTEI(_, query string, docs []string) any {
	return struct {
		Query     string   `json:"query"`
		Texts     []string `json:"texts"`
		RawScores bool     `json:"raw_scores"`
		Truncate  bool     `json:"truncate"`
	}{query, docs, true, true}
}

func decodeTEI(b []byte) ([]indexed, error) {
	var res []struct {
		Index *int     `json:"index"`
		Score *float64 `json:"score"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("want [{\"index\",\"score\"}]: %w", err)
	}
	out := make([]indexed, len(res))
	for i, r := range res {
		if r.Index == nil || r.Score == nil {
			return nil, fmt.Errorf("result %d lacks index or score", i)
		}
		out[i] = indexed{*r.Index, *r.Score}
	}
	return out, nil
}

func encodeCohere(model, query string, docs []string) any {
	return struct {
		Model     string   `json:"model,omitempty"`
		Query     string   `json:"query"`
		Documents []string `json:"documents"`
		TopN      int      `json:"top_n"`
	}{model, query, docs, len(docs)}
}

func decodeCohere(b []byte) ([]indexed, error) {
	var res struct {
		Results []struct {
			Index *int     `json:"index"`
			Score *float64 `json:"relevance_score"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("want {\"results\":[{\"index\",\"relevance_score\"}]}: %w", err)
	}
	out := make([]indexed, len(res.Results))
	for i, r := range res.Results {
		if r.Index == nil || r.Score == nil {
			return nil, fmt.Errorf("result %d lacks index or relevance_score", i)
		}
		out[i] = indexed{*r.Index, *r.Score}
	}
	return out, nil
}

func encodeVLLMScore(model, query string, docs []string) any {
	return struct {
		Model string   `json:"model,omitempty"`
		Text1 string   `json:"text_1"`
		Text2 []string `json:"text_2"`
	}{model, query, docs}
}

func decodeVLLMScore(b []byte) ([]indexed, error) {
	var res struct {
		Data []struct {
			Index *int     `json:"index"`
			Score *float64 `json:"score"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("want {\"data\":[{\"index\",\"score\"}]}: %w", err)
	}
	out := make([]indexed, len(res.Data))
	for i, r := range res.Data {
		if r.Index == nil || r.Score == nil {
			return nil, fmt.Errorf("result %d lacks index or score", i)
		}
		out[i] = indexed{*r.Index, *r.Score}
	}
	return out, nil
}
