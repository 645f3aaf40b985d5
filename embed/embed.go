// Package embed is the client of OpenAI-compatible embeddings endpoints
// (POST /v1/embeddings: vLLM, TEI, Infinity, Ollama, hosted APIs). It returns
// unit-length float32 vectors, so cosine similarity is a dot product.
package embed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/internal/redact"
	"github.com/synthq/synthq/internal/window"
)

// Doer sends HTTP requests (an *httpx.Client in production: retries,
// backoff, endpoint balancing, rate limits).
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Config configures a Client.
type Config struct {
	URL    string // base URL, e.g. http://localhost:8000/v1 (vLLM) or http://localhost:8080 (TEI)
	Model  string
	APIKey string // sent as "Authorization: Bearer"; never logged
	Batch  int    // texts per request (default 64)
	Doer   Doer   // default http.DefaultClient
	// Window cuts every text (prefix included) to the embedder's window
	// before it is sent (zero value: no cut).
	Window window.Cutter
}

// Client embeds texts. It is safe for concurrent use.
type Client struct {
	cfg      Config
	endpoint string
	batch    atomic.Int64 // shrinks when the server refuses a batch as too large
	dim      atomic.Int64
	cutAgain atomic.Int64 // inputs cut again after the server refused them as too long
}

// CutAgain is the number of inputs embedded after being cut again (see
// Embed).
func (c *Client) CutAgain() int64 { return c.cutAgain.Load() }

// New returns a client. The endpoint is URL + "/embeddings" when URL ends in
// /v1 (the OpenAI convention), URL itself when it already ends in
// /embeddings, and URL + "/v1/embeddings" otherwise (a bare TEI or Infinity
// address).
func New(cfg Config) (*Client, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	if cfg.Doer == nil {
		cfg.Doer = http.DefaultClient
	}
	u := strings.TrimRight(cfg.URL, "/")
	if u == "" {
		return nil, errors.New("embed: no URL given")
	}
	if cfg.Model == "" {
		return nil, errors.New("embed: no model given")
	}
	c := &Client{cfg: cfg}
	switch {
	case strings.HasSuffix(u, "/embeddings"):
		c.endpoint = u
	case strings.HasSuffix(u, "/v1"):
		c.endpoint = u + "/embeddings"
	default:
		c.endpoint = u + "/v1/embeddings"
	}
	c.batch.Store(int64(cfg.Batch))
	return c, nil
}

// Model is the model the client asks for.
func (c *Client) Model() string { return c.cfg.Model }

// Batch is the current batch size (smaller than configured once a server
// refused a batch as too large).
func (c *Client) Batch() int { return int(c.batch.Load()) }

// Cut returns text as it is sent: cut to the window (Config.Window).
// Callers that store vectors key them by it.
func (c *Client) Cut(text string) string {
	t, _ := c.cfg.Window.Cut(text, 0)
	return t
}

// Embed returns one unit-length vector per text, in input order, sending
// batches of at most Batch texts, each text cut to the window first (Cut).
// A batch the server refuses as too large (TEI's "batch size N > maximum
// allowed batch size M", httpx.BatchTooLarge) is halved, and the smaller size
// kept. A batch refused for its content (an httpx.Item fault: a message that
// says an input is too long, whatever its status, llama.cpp's HTTP 500
// "input (654 tokens) is too large to process" included; or a 4xx about the
// input) is split until the refused texts stand alone; those get a nil
// vector and their reason in failed (index -> message) and the rest are
// embedded. A text refused alone as too long is cut again from the count the
// server states (window.Cutter.Recut) and sent again, at most
// window.MaxRecuts times (CutAgain counts those that then passed). err is for failures no split can fix, an *httpx.Fault of kind
// Config (bad key, unknown model, a server that cannot embed: stop the run)
// or Endpoint (down after the HTTP layer's retries), or answers of mixed
// dimensions. Cost: one request per batch.
func (c *Client) Embed(ctx context.Context, texts []string) (vecs [][]float32, failed map[int]string, err error) {
	if c.cfg.Window.MaxTokens > 0 {
		cut := make([]string, len(texts))
		for i, t := range texts {
			cut[i] = c.Cut(t)
		}
		texts = cut
	}
	vecs = make([][]float32, len(texts))
	failed = map[int]string{}
	for i := 0; i < len(texts); {
		end := min(i+c.Batch(), len(texts))
		if err := c.embedRange(ctx, texts, i, end, vecs, failed); err != nil {
			var tl tooLargeBatch
			if errors.As(err, &tl) {
				continue // batch size shrank; same start
			}
			return nil, nil, err
		}
		i = end
	}
	return vecs, failed, nil
}

type tooLargeBatch struct{ error }

// embedRange embeds texts[lo:hi] into vecs, isolating refused inputs.
func (c *Client) embedRange(ctx context.Context, texts []string, lo, hi int, vecs [][]float32, failed map[int]string) error {
	got, err := c.call(ctx, texts[lo:hi])
	var f *httpx.Fault
	switch {
	case err == nil:
		copy(vecs[lo:hi], got)
		return nil
	case !errors.As(err, &f):
		return err
	case httpx.BatchTooLarge(f.Status, f.Msg) && hi-lo > 1:
		half := int64(max((hi-lo)/2, 1))
		for {
			cur := c.batch.Load()
			if cur <= half || c.batch.CompareAndSwap(cur, half) {
				break
			}
		}
		return tooLargeBatch{err}
	case f.Kind == httpx.Item:
		if hi-lo == 1 {
			msg, err := c.again(ctx, texts[lo], vecs[lo:lo+1], f.Msg)
			if err != nil {
				return err
			}
			if msg != "" {
				failed[lo] = msg
			}
			return nil
		}
		mid := (lo + hi) / 2
		if err := c.embedRange(ctx, texts, lo, mid, vecs, failed); err != nil {
			return err
		}
		return c.embedRange(ctx, texts, mid, hi, vecs, failed)
	default:
		return err
	}
}

// again cuts text again after the server refused it as too long (msg, the
// server's words: where they state its count, the cut scales by it; see
// window.Cutter.Recut) and sends it alone, at most window.MaxRecuts times.
// It stores the vector in out[0] and returns "" on success, or the
// server's last words when the text is still refused (or refused for
// another reason, or no window is set); err is for what is not the item's.
func (c *Client) again(ctx context.Context, text string, out [][]float32, msg string) (string, error) {
	if !httpx.TooLong(msg) {
		return msg, nil
	}
	for n := 1; n <= window.MaxRecuts; n++ {
		cut, ok := c.cfg.Window.Recut(text, 0, msg)
		if !ok {
			break
		}
		text = cut
		got, err := c.call(ctx, []string{text})
		var f *httpx.Fault
		switch {
		case err == nil:
			out[0] = got[0]
			c.cutAgain.Add(1)
			return "", nil
		case !errors.As(err, &f) || f.Kind != httpx.Item:
			return "", err
		case !httpx.TooLong(f.Msg):
			return f.Msg, nil
		}
		msg = fmt.Sprintf("%s (still refused after %d cut(s) to the count the server stated)", f.Msg, n)
	}
	return msg, nil
}

type request struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	EncodingFormat string   `json:"encoding_format"`
}

type response struct {
	Data []struct {
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
}

// call sends one batch; an answer that misses or repeats an index, or whose
// vectors differ in length, is asked again twice before it is an error.
func (c *Client) call(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(request{Model: c.cfg.Model, Input: texts, EncodingFormat: "float"})
	if err != nil {
		return nil, fmt.Errorf("embed: encode request: %w", err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		status, b, err := httpx.PostJSON(ctx, c.cfg.Doer, c.endpoint, c.cfg.APIKey, body)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &httpx.Fault{Kind: httpx.Endpoint, Role: "embed", URL: redact.URL(c.endpoint), Err: err}
		}
		if status/100 != 2 {
			return nil, fault(redact.URL(c.endpoint), status, httpx.ErrorText(b))
		}
		vecs, err := c.decode(b, len(texts))
		if err == nil {
			return vecs, nil
		}
		lastErr = fmt.Errorf("embed: answer from %s: %w", redact.URL(c.endpoint), err)
	}
	return nil, lastErr
}

// fault classifies a final non-2xx answer of the embeddings endpoint.
func fault(url string, status int, msg string) *httpx.Fault {
	f := &httpx.Fault{Kind: httpx.Classify(status, msg), Role: "embed", URL: url, Status: status, Msg: msg}
	if f.Kind == httpx.Config {
		f.Hint = httpx.ConfigHint("embed", status, msg)
	}
	return f
}

// decode maps the answer's items to input order by their index and
// normalises each vector to unit length.
func (c *Client) decode(b []byte, n int) ([][]float32, error) {
	var r response
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	out := make([][]float32, n)
	for _, d := range r.Data {
		if d.Index < 0 || d.Index >= n {
			return nil, fmt.Errorf("index %d out of range for %d inputs", d.Index, n)
		}
		if out[d.Index] != nil {
			return nil, fmt.Errorf("index %d appears twice", d.Index)
		}
		if len(d.Embedding) == 0 {
			return nil, fmt.Errorf("empty embedding at index %d", d.Index)
		}
		if dim := c.dim.Load(); dim == 0 {
			c.dim.CompareAndSwap(0, int64(len(d.Embedding)))
		}
		if dim := int(c.dim.Load()); len(d.Embedding) != dim {
			return nil, fmt.Errorf("embedding at index %d has %d dimensions, earlier ones %d", d.Index, len(d.Embedding), dim)
		}
		Normalize(d.Embedding)
		out[d.Index] = d.Embedding
	}
	for i, v := range out {
		if v == nil {
			return nil, fmt.Errorf("no embedding for index %d of %d", i, n)
		}
	}
	return out, nil
}

// Normalize scales v to unit length in place (a zero vector stays zero).
func Normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
}
