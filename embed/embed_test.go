package embed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/internal/window"
)

func texts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("passage %d about topic%d and subject%d", i, i%7, i%11)
	}
	return out
}

func unit(t *testing.T, v []float32) {
	t.Helper()
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if math.Abs(s-1) > 1e-5 {
		t.Fatalf("vector norm² %v, want 1", s)
	}
}

// TestEmbedBothFlavors checks order by index (the fake reverses items),
// normalisation, and batch sizes as sent.
func TestEmbedBothFlavors(t *testing.T) {
	for _, tc := range []struct {
		flavor    string
		batch     int
		wantBatch int // batch size in use after the call
	}{
		{"vllm", 64, 64},
		{"tei", 64, 32}, // TEI's default --max-client-batch-size is 32: halved once
		{"tei", 16, 16},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.flavor, tc.batch), func(t *testing.T) {
			f := fakes.NewEmbedder(tc.flavor, "intfloat/e5-base-v2", 48)
			defer f.Close()
			var mu sync.Mutex
			var sizes []int
			f.Inspect = func(b []byte) {
				var r struct {
					Input          []string `json:"input"`
					Model          string   `json:"model"`
					EncodingFormat string   `json:"encoding_format"`
				}
				json.Unmarshal(b, &r)
				if r.Model != "intfloat/e5-base-v2" || r.EncodingFormat != "float" {
					t.Errorf("request model %q format %q", r.Model, r.EncodingFormat)
				}
				mu.Lock()
				sizes = append(sizes, len(r.Input))
				mu.Unlock()
			}
			c, err := New(Config{URL: f.URL(), Model: "intfloat/e5-base-v2", Batch: tc.batch})
			if err != nil {
				t.Fatal(err)
			}
			in := texts(100)
			vecs, failed, err := c.Embed(context.Background(), in)
			if err != nil || len(failed) != 0 {
				t.Fatalf("embed: %v, failed %v", err, failed)
			}
			for i, v := range vecs {
				unit(t, v)
				want := f.Vector(in[i])
				Normalize(want)
				for j := range v {
					if math.Abs(float64(v[j]-want[j])) > 1e-6 {
						t.Fatalf("text %d: vector differs from the fake's at %d (order by index broken?)", i, j)
					}
				}
			}
			if c.Batch() != tc.wantBatch {
				t.Errorf("batch in use %d, want %d", c.Batch(), tc.wantBatch)
			}
			for _, s := range sizes[len(sizes)-2:] {
				if s > tc.wantBatch {
					t.Errorf("sent a batch of %d after shrinking to %d (sizes %v)", s, tc.wantBatch, sizes)
				}
			}
		})
	}
}

// TestEmbedIsolatesTooLongInputs: a text over the model's length fails
// alone; every other text of its batch is embedded.
func TestEmbedIsolatesTooLongInputs(t *testing.T) {
	for _, flavor := range []string{"vllm", "tei"} {
		t.Run(flavor, func(t *testing.T) {
			f := fakes.NewEmbedder(flavor, "m", 16)
			f.MaxInputWords = 20
			defer f.Close()
			c, _ := New(Config{URL: f.Server.URL, Model: "m", Batch: 16}) // bare address: /v1/embeddings appended
			in := texts(40)
			in[5] = strings.Repeat("long ", 30)
			in[33] = strings.Repeat("longer ", 40)
			vecs, failed, err := c.Embed(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if len(failed) != 2 || failed[5] == "" || failed[33] == "" {
				t.Fatalf("failed = %v, want indexes 5 and 33", failed)
			}
			if !strings.Contains(failed[5], "tokens") {
				t.Errorf("reason %q does not carry the server's message", failed[5])
			}
			for i, v := range vecs {
				if (v == nil) != (i == 5 || i == 33) {
					t.Errorf("text %d: vector present = %v", i, v != nil)
				}
			}
		})
	}
}

// TestEmbedFatalAndRetried: a wrong key is an error at once; 429/503/HTML
// answers are retried by the HTTP layer and leave the result unchanged.
func TestEmbedFatalAndRetried(t *testing.T) {
	f := fakes.NewEmbedder("vllm", "m", 8)
	f.APIKey = "sk-right"
	defer f.Close()
	c, _ := New(Config{URL: f.URL(), Model: "m", APIKey: "sk-wrong"})
	_, _, err := c.Embed(context.Background(), texts(3))
	var se *httpx.Fault
	if !errors.As(err, &se) || se.Status != 401 || se.Kind != httpx.Config || !strings.Contains(se.Hint, "--embed-api-key") {
		t.Fatalf("wrong key: err %v, want a Config fault with HTTP 401 and the key hint", err)
	}
	if strings.Contains(err.Error(), "sk-wrong") {
		t.Fatal("the error carries the key")
	}

	faults := []string{"429", "503", "html", "truncated", "500"}
	base := f.Counter.Total() // requests so far
	f.Fault = func(n int64, _ []byte) string {
		if i := n - base - 1; i < int64(len(faults)) {
			return faults[i]
		}
		return ""
	}
	hc := httpx.New(&httpx.Options{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, MaxRetryAfter: time.Millisecond})
	c, _ = New(Config{URL: f.URL(), Model: "m", APIKey: "sk-right", Doer: hc})
	vecs, failed, err := c.Embed(context.Background(), texts(3))
	if err != nil || len(failed) != 0 || len(vecs) != 3 {
		t.Fatalf("after faults: %v %v", err, failed)
	}
	if hc.Retries() != int64(len(faults)) {
		t.Errorf("retries %d, want %d", hc.Retries(), len(faults))
	}
}

func TestEndpointFromURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://h:8000/v1":                "http://h:8000/v1/embeddings",
		"http://h:8000/v1/":               "http://h:8000/v1/embeddings",
		"http://h:8080":                   "http://h:8080/v1/embeddings",
		"https://api.x.com/v1/embeddings": "https://api.x.com/v1/embeddings",
	} {
		c, err := New(Config{URL: in, Model: "m"})
		if err != nil || c.endpoint != want {
			t.Errorf("%s -> %s (%v), want %s", in, c.endpoint, err, want)
		}
	}
}

// llama-server's answers to inputs over its windows, byte for byte: one
// input over the physical batch (HTTP 500 "input (N tokens) is too large to
// process…") or over the slot context (HTTP 400 exceed_context_size_error)
// is isolated, the rest embedded, with no retry of the refusal; a TEI batch
// limit still shrinks the batch; with our window the long input is cut and
// nothing is refused.
func TestEmbedLlamaCppWindows(t *testing.T) {
	long := strings.Repeat("mitochondrial biogenesis in skeletal muscle ", 80) // ~780 tokens
	mid := strings.Repeat("mitochondrial biogenesis in skeletal muscle ", 30)  // ~290 tokens
	in := append(texts(9), long, mid)
	cases := []struct {
		name        string
		batch, slot int
		window      window.Cutter
		failed      map[int]string // index -> phrase of its reason
	}{
		{name: "500 over -ub", batch: 512, failed: map[int]string{9: "too large to process"}},
		{name: "400 over the slot context", batch: 2048, slot: 256,
			failed: map[int]string{9: "exceeds the available context size", 10: "exceeds the available context size"}},
		{name: "our 512 window cuts", batch: 512, window: window.Cutter{MaxTokens: 512, Reserve: 2}},
		{name: "our 256 window cuts under the slot", batch: 2048, slot: 256, window: window.Cutter{MaxTokens: 256, Reserve: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := fakes.NewEmbedder("llamacpp", "nomic-embed-text-v1.5.Q8_0.gguf", 16)
			defer f.Close()
			f.PhysicalBatch, f.SlotContext = tc.batch, tc.slot
			hc := httpx.New(&httpx.Options{MaxRetries: 3, BaseDelay: time.Millisecond})
			c, _ := New(Config{URL: f.URL(), Model: "nomic-embed-text", Batch: 16, Doer: hc, Window: tc.window})
			vecs, failed, err := c.Embed(context.Background(), in)
			if err != nil {
				t.Fatalf("embed: %v", err)
			}
			if len(failed) != len(tc.failed) {
				t.Fatalf("failed %v, want %v", failed, tc.failed)
			}
			for i, phrase := range tc.failed {
				if !strings.Contains(failed[i], phrase) || vecs[i] != nil {
					t.Errorf("text %d: reason %q (want %q), vector %v", i, failed[i], phrase, vecs[i] != nil)
				}
			}
			for i, v := range vecs {
				if _, bad := tc.failed[i]; !bad {
					unit(t, v)
				}
			}
			if hc.Retries() != 0 {
				t.Errorf("%d retries: a too-long answer is final", hc.Retries())
			}
			if c.Batch() != 16 {
				t.Errorf("batch shrank to %d: a too-long input is not a batch too large", c.Batch())
			}
		})
	}
}

// Every final answer is one httpx.Fault kind: the batch-size refusal is
// told from the per-input "physical batch size" message.
func TestEmbedFaultKinds(t *testing.T) {
	for _, tc := range []struct {
		status int
		msg    string
		batch  bool
		kind   httpx.Kind
	}{
		{500, "input (654 tokens) is too large to process. increase the physical batch size (current batch size: 512)", false, httpx.Item},
		{400, "request (600 tokens) exceeds the available context size (512 tokens), try increasing it", false, httpx.Item},
		{413, "batch size 64 > maximum allowed batch size 32", true, httpx.Item},
		{501, "This server does not support embeddings. Start it with `--embeddings`", false, httpx.Config},
		{404, "404 page not found", false, httpx.Config},
		{503, "Service Unavailable", false, httpx.Endpoint},
	} {
		f := fault("http://x/v1/embeddings", tc.status, tc.msg)
		if f.Kind != tc.kind || httpx.BatchTooLarge(tc.status, tc.msg) != tc.batch {
			t.Errorf("%d %q: kind %v batch %v, want %v %v", tc.status, tc.msg, f.Kind, httpx.BatchTooLarge(tc.status, tc.msg), tc.kind, tc.batch)
		}
		if f.Kind == httpx.Config && f.Hint == "" {
			t.Errorf("%d %q: no hint", tc.status, tc.msg)
		}
	}
}

// TestNormalizeTiny: a vector of float32 denormals normalises to a finite
// unit vector (in float32 its inverse length overflowed to +Inf and gave
// [+Inf NaN …]); zero and non-finite vectors are refused.
func TestNormalizeTiny(t *testing.T) {
	v := []float32{1e-44, 0, 0, 1e-45}
	if !Normalize(v) || !Finite(v) {
		t.Fatalf("denormal vector normalised to %v", v)
	}
	unit(t, v)
	for _, bad := range [][]float32{{0, 0}, {float32(math.Inf(1)), 1}, {float32(math.NaN()), 1}} {
		if Normalize(bad) {
			t.Errorf("Normalize(%v) reported success", bad)
		}
	}
}

// TestEmbedHostileAnswers: against the hostile stand-in, every vector the
// client returns is a finite unit vector: a denormal answer is normalised
// right, and NaN (as Python writes it, or as null), numbers past float32
// and all-zero vectors are malformed answers: asked again, then the texts
// of that answer fail as items while the server answers others well, and
// the whole run is misconfigured when it never does. A huge answer is not
// read past its cap.
func TestEmbedHostileAnswers(t *testing.T) {
	f := fakes.NewEmbedder("vllm", "m", 16)
	defer f.Close()
	mode := map[string]string{"tinyword": "denormal", "nanword": "nan", "bigword": "absurd", "zeroword": "zero", "hugeword": "huge", "oopsword": "malformed"}
	f.Fault = func(_ int64, body []byte) string {
		for w, m := range mode {
			if strings.Contains(string(body), w) {
				return m
			}
		}
		return ""
	}
	hc := httpx.New(&httpx.Options{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Timeout: 20 * time.Second,
		Role: "embed", Endpoints: []string{f.URL()}})
	c, _ := New(Config{URL: f.URL(), Model: "m", Doer: hc, Batch: 4})
	vecs, failed, err := c.Embed(context.Background(), []string{"plain one", "tinyword", "plain two"})
	if err != nil || len(failed) != 0 {
		t.Fatalf("denormal: %v %v", err, failed)
	}
	for _, v := range vecs {
		if !Finite(v) {
			t.Fatalf("non-finite vector %v", v)
		}
		unit(t, v)
	}
	for word, m := range mode {
		if m == "denormal" {
			continue
		}
		vecs, failed, err := c.Embed(context.Background(), []string{"plain three", word + " here", "plain four"})
		if err != nil {
			t.Errorf("%s: %v, want the text to fail alone", m, err)
			continue
		}
		if len(failed) != 1 || failed[1] == "" || vecs[1] != nil {
			t.Errorf("%s: failed %v, want text 1 refused", m, failed)
		}
		for i, v := range vecs {
			if i != 1 && (v == nil || !Finite(v)) {
				t.Errorf("%s: vector %d = %v", m, i, v)
			}
		}
	}
	if f.HugeSent.Load() > 200<<20 {
		t.Errorf("the huge answers wrote %d MiB before the client hung up", f.HugeSent.Load()>>20)
	}
	// A server that never answers well: a misconfiguration, with the hint.
	f2 := fakes.NewEmbedder("vllm", "m", 16)
	defer f2.Close()
	f2.Fault = func(int64, []byte) string { return "malformed" }
	hc2 := httpx.New(&httpx.Options{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Role: "embed", Endpoints: []string{f2.URL()}})
	c2, _ := New(Config{URL: f2.URL(), Model: "m", Doer: hc2})
	_, _, err = c2.Embed(context.Background(), texts(3))
	if httpx.KindOf(err) != httpx.Config || !strings.Contains(err.Error(), "every answer so far was malformed") {
		t.Errorf("every answer malformed: %v, want a Config fault", err)
	}
}
