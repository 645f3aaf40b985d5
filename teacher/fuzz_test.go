package teacher

import (
	"context"
	"math"
	"testing"

	"github.com/synthq/synthq/internal/fakes"
)

// FuzzRerankAnswer feeds any 2xx body to each rerank API's client (TEI,
// Cohere-style as vLLM, Infinity, Jina and llama.cpp answer, vLLM /score):
// it never panics, and an answer it accepts has exactly one finite float32
// score per passage, equal to the score the answer gives that index.
// Seeded from llama-server's recorded answers and each API's documented
// shape.
func FuzzRerankAnswer(f *testing.F) {
	for _, b := range fakes.RecordedAnswers("rerank") {
		for api := range APIs {
			f.Add(uint8(api), uint8(3), b)
		}
	}
	for _, s := range []struct {
		api uint8
		n   uint8
		b   string
	}{
		{0, 2, `[{"index":1,"score":0.25},{"index":0,"score":-3.5}]`},
		{1, 2, `{"id":"x","results":[{"index":1,"relevance_score":0.9,"document":{"text":"b"}},{"index":0,"relevance_score":0.1}],"meta":{"billed_units":{"search_units":1}}}`},
		{1, 1, `{"object":"rerank","results":[{"relevance_score":0.5,"index":0,"document":null}],"model":"m","usage":{"total_tokens":9}}`},
		{2, 2, `{"id":"score-1","object":"list","created":1,"model":"m","data":[{"index":0,"object":"score","score":0.75},{"index":1,"object":"score","score":1e-3}],"usage":{"prompt_tokens":8,"total_tokens":8}}`},
		{0, 1, `[{"index":0,"score":1e300}]`},
		{0, 1, `[{"index":0,"score":NaN}]`},
		{1, 2, `{"results":[{"index":0,"relevance_score":1},{"index":0,"relevance_score":2}]}`},
		{2, 1, `{"data":"oops"}`},
	} {
		f.Add(s.api, s.n, []byte(s.b))
	}
	f.Fuzz(func(t *testing.T, api, n uint8, body []byte) {
		n = n%40 + 1
		h, err := New(Config{API: APIs[int(api)%len(APIs)], URL: "http://teacher.invalid", Model: "m", Doer: fakes.BodyDoer(body)})
		if err != nil {
			t.Fatal(err)
		}
		docs := make([]string, n)
		for i := range docs {
			docs[i] = "passage"
		}
		got, err := h.call(context.Background(), "query", docs)
		if err != nil {
			if got != nil {
				t.Fatalf("scores %v beside error %v", got, err)
			}
			return
		}
		if len(got) != int(n) {
			t.Fatalf("%d scores for %d passages", len(got), n)
		}
		res, derr := h.decode(body)
		if derr != nil {
			t.Fatalf("accepted an answer its decoder refuses: %v", derr)
		}
		for _, r := range res {
			if got[r.Index] != float32(r.Score) {
				t.Fatalf("index %d: score %v, answer says %v", r.Index, got[r.Index], r.Score)
			}
		}
		for i, s := range got {
			if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
				t.Fatalf("score %d is %v", i, s)
			}
		}
	})
}
