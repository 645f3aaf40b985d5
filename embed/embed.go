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
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/synthq/synthq/internal/batch"
	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/internal/redact"
	"github.com/synthq/synthq/internal/window"
)

// Config configures a Client.
type Config struct {
	URL    string // base URL, e.g. http://localhost:8000/v1 (vLLM) or http://localhost:8080 (TEI)
	Model  string
	APIKey string     // sent as "Authorization: Bearer"; never logged
	Batch  int        // texts per request (default 64)
	Doer   httpx.Doer // default http.DefaultClient
	// Window cuts every text (prefix included) to the embedder's window
	// before it is sent (zero value: no cut).
	Window window.Cutter
}

// Client embeds texts. It is safe for concurrent use.
type Client struct {
	cfg      Config
	endpoint string
	batch    *batch.Size // shrinks when the server refuses a batch as too large
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
	c.batch = batch.NewSize(cfg.Batch)
	return c, nil
}

// Model is the model the client asks for.
func (c *Client) Model() string { return c.cfg.Model }

// Batch is the current batch size (smaller than configured once a server
// refused a batch as too large).
func (c *Client) Batch() int { return c.batch.Load() }

// Key is what the vector of text is stored under: the text as it is sent,
// cut to the window (Config.Window), so that a changed window embeds again
// only the texts whose cut changes. When the server counts the tokens
// (Window.Remote) the cut is known only by asking it, and the key is the
// window's description and the whole text instead: no request to find a
// stored vector. Cost: one local count, or a binary search of counts for a
// text over the window.
func (c *Client) Key(text string) string {
	if c.cfg.Window.Remote {
		return c.cfg.Window.Desc() + "\x00" + text
	}
	t, _, _ := c.cfg.Window.Cut(context.Background(), text, 0) // a local count cannot fail
	return t
}

// Embed returns one unit-length vector per text, in input order, sending
// batches of at most Batch texts, each text cut to the window first.
// A batch the server refuses as too large (TEI's "batch size N > maximum
// allowed batch size M", httpx.BatchTooLarge) is halved, and the smaller size
// kept. A batch refused for its content (an httpx.Item fault: a message that
// says an input is too long, whatever its status, llama.cpp's HTTP 500
// "input (654 tokens) is too large to process" included; or a 4xx about the
// input) is split until the refused texts stand alone; those get a nil
// vector and their reason in failed (index -> message) and the rest are
// embedded. A text refused alone as too long is cut again from the count the
// server states (window.Cutter.Recut) and sent again, at most
// window.MaxRecuts times (CutAgain counts those that then passed). err is
// for failures no split can fix, an *httpx.Fault of kind Config (bad key,
// unknown model, a server that cannot embed: stop the run)
// or Endpoint (down after the HTTP layer's retries), or answers of mixed
// dimensions. Cost: one request per batch.
func (c *Client) Embed(ctx context.Context, texts []string) (vecs [][]float32, failed map[int]string, err error) {
	if c.cfg.Window.MaxTokens > 0 {
		cut := make([]string, len(texts))
		for i, t := range texts {
			if cut[i], _, err = c.cfg.Window.Cut(ctx, t, 0); err != nil {
				return nil, nil, err
			}
		}
		texts = cut
	}
	vecs = make([][]float32, len(texts))
	failed, err = batch.Run(len(texts), c.batch, func(lo, hi int) error {
		got, err := c.call(ctx, texts[lo:hi])
		if err == nil {
			copy(vecs[lo:hi], got)
		}
		return err
	}, func(i int, msg string) (string, error) {
		return c.again(ctx, texts[i], vecs[i:i+1], msg)
	})
	if err != nil {
		return nil, nil, err
	}
	return vecs, failed, nil
}

// again cuts text again after the server refused it as too long (msg, the
// server's words: where they state its count, the cut scales by it; see
// window.Cutter.Recut) and sends it alone, at most window.MaxRecuts times.
// It stores the vector in out[0] and returns "" on success, or the
// server's last words when the text is still refused (or refused for
// another reason, or no window is set); err is for what is not the item's.
func (c *Client) again(ctx context.Context, text string, out [][]float32, msg string) (string, error) {
	msg, err := batch.Again(msg, func(msg string) (bool, error) {
		cut, ok, err := c.cfg.Window.Recut(ctx, text, 0, msg)
		text = cut
		return ok, err
	}, func() error {
		got, err := c.call(ctx, []string{text})
		if err == nil {
			out[0] = got[0]
		}
		return err
	})
	if err == nil && msg == "" {
		c.cutAgain.Add(1)
	}
	return msg, err
}

type request struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	EncodingFormat string   `json:"encoding_format"`
}

type response struct {
	Data []struct {
		Index     int     `json:"index"`
		Embedding []num32 `json:"embedding"`
	} `json:"data"`
}

// num32 is a vector entry as a server writes it: a JSON number that fits a
// float32. null (what orjson and serde write for a NaN) and numbers past
// float32's range are errors, never a silent 0 or ±Inf.
type num32 float32

func (n *num32) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return errors.New("null in a vector (a NaN on the server?)")
	}
	f, err := strconv.ParseFloat(string(b), 32)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return fmt.Errorf("vector entry %.40s is not a float32", b)
	}
	*n = num32(f)
	return nil
}

// MaxDims is the most dimensions AnswerLimit allows for before the model's
// size is known: above every embedding model in use (4,096 for 7B-based
// ones, 3,072 for OpenAI's large).
const MaxDims = 16384

// AnswerLimit is the most an honest answer to an embeddings request of n
// texts can weigh: 1 MiB for the envelope (model, usage, object fields)
// plus n vectors of dim numbers (MaxDims while unknown) at 32 bytes each
// ("-1.2345678901234567e-05, " is 25: servers in Python write float32
// values as float64s). 64 texts at 1,024 dimensions: 3 MiB; at 16,384:
// 33 MiB. A larger answer is malformed and is not read.
func AnswerLimit(n, dim int) int64 {
	if dim <= 0 {
		dim = MaxDims
	}
	return 1<<20 + int64(n)*int64(dim)*32
}

// call sends one batch. An answer that does not decode (see decode) is
// malformed: the HTTP layer (an *httpx.Client) asks again and classifies it
// (httpx.Expect); with another Doer it is asked again twice here and then
// fails the batch as an Item fault.
func (c *Client) call(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(request{Model: c.cfg.Model, Input: texts, EncodingFormat: "float"})
	if err != nil {
		return nil, fmt.Errorf("embed: encode request: %w", err)
	}
	var got [][]float32
	check := func(b []byte) error {
		v, err := c.decode(b, len(texts))
		got = v
		return err
	}
	err = httpx.PostChecked(ctx, c.cfg.Doer, c.endpoint, redact.URL(c.endpoint), c.cfg.APIKey, "embed", body,
		httpx.Expect{MaxBytes: AnswerLimit(len(texts), int(c.dim.Load())),
			What: fmt.Sprintf("an embeddings answer for %d texts", len(texts)), Check: check})
	if err != nil {
		return nil, err
	}
	return got, nil
}

// fault classifies a final non-2xx answer of the embeddings endpoint.
func fault(url string, status int, msg string) *httpx.Fault {
	return httpx.StatusFault("embed", url, status, msg)
}

// decode maps the answer's items to input order by their index and
// normalises each vector to unit length. An answer that misses or repeats
// an index, whose vectors differ in length from the first answer's, holds
// a number that is not a finite float32 (null, past float32's range) or an
// all-zero vector (no direction to compare) is an error.
func (c *Client) decode(b []byte, n int) ([][]float32, error) {
	var r response
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	out := make([][]float32, n)
	dim := int(c.dim.Load())
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
		vec := make([]float32, len(d.Embedding))
		for i, x := range d.Embedding {
			vec[i] = float32(x)
		}
		if dim == 0 {
			dim = len(vec) // the first answer sets the model's size
		}
		if len(vec) != dim {
			return nil, fmt.Errorf("embedding at index %d has %d dimensions, earlier ones %d", d.Index, len(vec), dim)
		}
		if !Normalize(vec) || !Finite(vec) {
			return nil, fmt.Errorf("embedding at index %d is all zeros", d.Index)
		}
		out[d.Index] = vec
	}
	for i, v := range out {
		if v == nil {
			return nil, fmt.Errorf("no embedding for index %d of %d", i, n)
		}
	}
	c.dim.CompareAndSwap(0, int64(dim))
	return out, nil
}

// Normalize scales v to unit length in place and reports whether it could:
// a zero vector, or one holding a NaN or an infinity, is left as it is
// (false). The scale is computed and applied in float64, so a vector of
// tiny (denormal) float32 values normalises like any other: in float32 its
// inverse length overflows to +Inf, and +Inf·0 is NaN.
func Normalize(v []float32) bool {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 || math.IsInf(s, 0) || math.IsNaN(s) {
		return false
	}
	inv := 1 / math.Sqrt(s)
	for i := range v {
		v[i] = float32(float64(v[i]) * inv)
	}
	return true
}

// Finite reports whether every entry of v is a finite number.
func Finite(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}
