package stages

import (
	"context"
	"math"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/synthq/synthq/pipeline"
)

// countingEmbedder answers a unit vector per text, or, with poison set,
// the vector a float32 normalisation made of a denormal answer.
type countingEmbedder struct {
	calls  atomic.Int64
	poison bool
}

func (e *countingEmbedder) Embed(_ context.Context, texts []string) ([][]float32, map[int]string, error) {
	e.calls.Add(int64(len(texts)))
	out := make([][]float32, len(texts))
	for i := range out {
		out[i] = []float32{0.6, 0.8}
		if e.poison {
			out[i] = []float32{float32(math.Inf(1)), float32(math.NaN())}
		}
	}
	return out, nil, nil
}

// TestVectorCacheHeals: a stored vector that is not a finite unit vector
// (written by an earlier synthq from a hostile answer) is embedded again
// and stored over, never reused; an embedder's non-finite vector is never
// stored but fails its text.
func TestVectorCacheHeals(t *testing.T) {
	st, err := pipeline.OpenStore(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	emb := &countingEmbedder{}
	vc := &vectorCache{st: st, emb: emb, model: "m", concurrency: 1, batch: 8, counters: &pipeline.Counters{}}
	texts := []string{"good", "poisoned", "short", "empty"}
	st.Put(vc.key("good"), encodeVec([]float32{1, 0}))
	st.Put(vc.key("poisoned"), encodeVec([]float32{float32(math.Inf(1)), float32(math.NaN())}))
	st.Put(vc.key("short"), []byte{1, 2, 3})
	st.Put(vc.key("empty"), nil)
	vecs, failed, err := vc.vectors(context.Background(), texts, "query")
	if err != nil || len(failed) != 0 {
		t.Fatal(err, failed)
	}
	if emb.calls.Load() != 3 {
		t.Errorf("%d texts embedded, want the 3 bad ones", emb.calls.Load())
	}
	for i, v := range vecs {
		if !validVec(v) {
			t.Errorf("vector %d = %v", i, v)
		}
		b, _, _ := st.Get(vc.key(texts[i]))
		if !validVec(decodeVec(b)) {
			t.Errorf("stored vector %d = %v", i, decodeVec(b))
		}
	}
	if n := vc.counters.Snapshot()["query_vectors_invalid"]; n != 3 {
		t.Errorf("query_vectors_invalid = %d, want 3", n)
	}
	emb.poison = true
	_, failed, err = vc.vectors(context.Background(), []string{"new"}, "query")
	if err != nil || failed[0] == "" {
		t.Errorf("a non-finite vector from the embedder: failed %v, err %v", failed, err)
	}
	if _, ok, _ := st.Get(vc.key("new")); ok {
		t.Error("a non-finite vector was stored")
	}
}
