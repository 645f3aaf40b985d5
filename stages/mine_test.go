package stages

import (
	"fmt"
	"testing"

	"github.com/synthq/synthq/pipeline"
)

// TestMineOne covers each outcome of fusing and filtering one query's
// first-pass lists, with its drop reason.
func TestMineOne(t *testing.T) {
	ids := func(xs ...string) hitList { return hitList{IDs: xs, Scores: make([]float32, len(xs))} }
	norm := map[string]uint64{"src": 1, "copy": 1, "near": 2, "a": 3, "b": 4, "c": 5, "d": 6}
	sel := &Selection{Duplicates: map[string]string{"near": "src"}}
	for _, tc := range []struct {
		name        string
		lists       []hitList
		roundtripK  int
		minCands    int
		wantDrop    string
		wantIDs     string
		wantRemoved int
	}{
		{"kept, copies of the source removed", []hitList{ids("a", "src", "copy", "near", "b")}, 2, 2, "", "[a src b]", 2},
		{"source below the round-trip cut", []hitList{ids("a", "b", "src")}, 2, 1, DropRoundtrip, "[]", 0},
		{"source not retrieved", []hitList{ids("a", "b")}, 2, 1, DropRoundtrip, "[]", 0},
		{"round trip off: source added at rank 0", []hitList{ids("a", "b")}, 0, 1, "", "[a b src]", 0},
		{"too few candidates", []hitList{ids("src", "a")}, 5, 3, DropFewCandidates, "[]", 0},
		{"fused: agreement first", []hitList{ids("a", "src", "b"), ids("src", "b", "c")}, 1, 1, "", "[src b a c]", 0},
		{"one run refused the query: the other decides", []hitList{{}, ids("src", "d")}, 1, 1, "", "[src d]", 0},
		{"every run refused the query", []hitList{{}}, 1, 1, DropEmbedFailed, "[]", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &pipeline.Config{RoundtripK: tc.roundtripK, MinCandidates: tc.minCands, RRFK: 60, Candidates: 100}
			m, removed := mineOne(cfg, Query{DocID: "src", Text: "q"}, tc.lists, norm, sel)
			if m.Drop != tc.wantDrop || fmt.Sprint(m.DocIDs) != tc.wantIDs || removed != tc.wantRemoved {
				t.Errorf("got drop %q ids %v removed %d; want %q %s %d", m.Drop, m.DocIDs, removed, tc.wantDrop, tc.wantIDs, tc.wantRemoved)
			}
		})
	}
}
