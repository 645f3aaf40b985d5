package embed

import (
	"context"
	"math"
	"testing"

	"github.com/synthq/synthq/internal/fakes"
)

// FuzzEmbeddingsAnswer feeds any 2xx body to the embeddings client: it
// never panics, and an answer it accepts has one vector per text, all of
// one length, every entry finite, each of unit length. Seeded from
// llama-server's recorded answer and the OpenAI/TEI/vLLM shape.
func FuzzEmbeddingsAnswer(f *testing.F) {
	for _, b := range fakes.RecordedAnswers("embedding") {
		f.Add(uint8(3), b)
		f.Add(uint8(1), b)
	}
	for _, s := range []string{
		`{"object":"list","data":[{"object":"embedding","embedding":[0.6,0.8],"index":1},{"object":"embedding","embedding":[1,0],"index":0}],"model":"m","usage":{"prompt_tokens":4,"total_tokens":4}}`,
		`{"data":[{"embedding":[1e-44,0],"index":0},{"embedding":[0,3],"index":1}]}`,
		`{"data":[{"embedding":[NaN,1],"index":0},{"embedding":[null,3],"index":1}]}`,
		`{"data":[{"embedding":[1e39,1],"index":0},{"embedding":[0,0],"index":1}]}`,
		`{"data":[{"embedding":[1,2,3],"index":0},{"embedding":[1,2],"index":1}]}`,
		`{"data":"oops"}`,
	} {
		f.Add(uint8(2), []byte(s))
	}
	f.Fuzz(func(t *testing.T, n uint8, body []byte) {
		n = n%16 + 1
		c, err := New(Config{URL: "http://embed.invalid/v1", Model: "m", Doer: fakes.BodyDoer(body)})
		if err != nil {
			t.Fatal(err)
		}
		texts := make([]string, n)
		for i := range texts {
			texts[i] = "text"
		}
		got, err := c.call(context.Background(), texts)
		if err != nil {
			return
		}
		if len(got) != int(n) {
			t.Fatalf("%d vectors for %d texts", len(got), n)
		}
		for i, v := range got {
			if len(v) == 0 || len(v) != len(got[0]) {
				t.Fatalf("vector %d has %d dimensions, vector 0 %d", i, len(v), len(got[0]))
			}
			var s float64
			for _, x := range v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Fatalf("vector %d holds %v", i, x)
				}
				s += float64(x) * float64(x)
			}
			if math.Abs(s-1) > 1e-3 {
				t.Fatalf("vector %d has norm² %v, want 1", i, s)
			}
		}
	})
}
