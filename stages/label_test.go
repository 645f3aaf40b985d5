package stages

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"testing"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
)

// A score record cut short or with an absurd length is an error, never a
// panic; a good one round-trips.
func TestDecodeScoresCorrupt(t *testing.T) {
	good := encodeScores(map[string]float32{"a": 1.5, "bb": -2})
	m := map[string]float32{}
	if err := decodeScores(good, m); err != nil || m["a"] != 1.5 || m["bb"] != -2 || len(m) != 2 {
		t.Fatalf("round trip: %v %v", m, err)
	}
	huge := binary.AppendUvarint(nil, 1<<64-2) // n+4 overflows
	for name, b := range map[string][]byte{
		"cut in the score": good[:len(good)-1],
		"cut in the id":    good[:2],
		"bad varint":       {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"huge length":      append(huge, 'x', 1, 2, 3, 4),
	} {
		if err := decodeScores(b, map[string]float32{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// The scores of a query text are the union of its per-call records (and of
// the single record older stores hold).
func TestLoadScoresMergesCalls(t *testing.T) {
	st, err := pipeline.OpenStore(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key := dataset.ScoreKey("teacher", "q")
	other := dataset.ScoreKey("teacher", "other")
	st.Put(key, encodeScores(map[string]float32{"old": 1}))
	st.Put(scoreCallKey(key, []string{"a", "b"}), encodeScores(map[string]float32{"a": 2, "b": 3}))
	st.Put(scoreCallKey(key, []string{"c"}), encodeScores(map[string]float32{"c": 4}))
	st.Put(scoreCallKey(other, []string{"x"}), encodeScores(map[string]float32{"x": 9}))
	m, err := loadScores(st, key)
	if err != nil || len(m) != 4 || m["old"] != 1 || m["a"] != 2 || m["b"] != 3 || m["c"] != 4 {
		t.Errorf("loadScores = %v, %v", m, err)
	}
	// A corrupt record, or one holding a non-finite score (stored by an
	// earlier synthq from a hostile teacher), is dropped: its passages are
	// scored again, the rest kept.
	st.Put(scoreCallKey(key, []string{"d"}), []byte{0xff})
	st.Put(scoreCallKey(key, []string{"e", "f"}), encodeScores(map[string]float32{"e": float32(math.Inf(1)), "f": 1}))
	st.Put(scoreCallKey(key, []string{"g"}), encodeScores(map[string]float32{"g": float32(math.NaN())}))
	m, err = loadScores(st, key)
	if err != nil || len(m) != 4 || m["c"] != 4 {
		t.Errorf("with bad records: %v, %v; want the 4 good scores", m, err)
	}
	for _, ids := range [][]string{{"d"}, {"e", "f"}, {"g"}} {
		if _, ok, _ := st.Get(scoreCallKey(key, ids)); ok {
			t.Errorf("bad record %v kept", ids)
		}
	}
}
