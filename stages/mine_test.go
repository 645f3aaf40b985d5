package stages

import (
	"fmt"
	"testing"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
)

// TestMineOne covers each outcome of fusing and filtering one query's
// first-pass lists, with its drop reason.
func TestMineOne(t *testing.T) {
	ids := func(xs ...string) dataset.HitList { return dataset.HitList{IDs: xs, Scores: make([]float32, len(xs))} }
	norm := map[string]uint64{"src": 1, "copy": 1, "near": 2, "a": 3, "b": 4, "c": 5, "d": 6}
	sel := &Selection{Duplicates: map[string]string{"near": "src"}}
	for _, tc := range []struct {
		name        string
		lists       []dataset.HitList
		roundtripK  int
		minCands    int
		wantDrop    string
		wantIDs     string
		wantRemoved int
	}{
		{"kept, copies of the source removed", []dataset.HitList{ids("a", "src", "copy", "near", "b")}, 2, 2, "", "[a src b]", 2},
		{"source below the round-trip cut", []dataset.HitList{ids("a", "b", "src")}, 2, 1, dataset.DropRoundtrip, "[]", 0},
		{"source not retrieved", []dataset.HitList{ids("a", "b")}, 2, 1, dataset.DropRoundtrip, "[]", 0},
		{"round trip off: source added at rank 0", []dataset.HitList{ids("a", "b")}, 0, 1, "", "[a b src]", 0},
		{"too few candidates", []dataset.HitList{ids("src", "a")}, 5, 3, dataset.DropFewCandidates, "[]", 0},
		{"fused: agreement first", []dataset.HitList{ids("a", "src", "b"), ids("src", "b", "c")}, 1, 1, "", "[src b a c]", 0},
		{"one run refused the query: the other decides", []dataset.HitList{{}, ids("src", "d")}, 1, 1, "", "[src d]", 0},
		{"every run refused the query", []dataset.HitList{{}}, 1, 1, dataset.DropEmbedFailed, "[]", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &pipeline.Config{RoundtripK: tc.roundtripK, MinCandidates: tc.minCands, RRFK: 60, Candidates: 100}
			m, removed := mineOne(cfg, dataset.Query{DocID: "src", Text: "q"}, tc.lists, norm, sel)
			if m.Drop != tc.wantDrop || fmt.Sprint(m.DocIDs) != tc.wantIDs || removed != tc.wantRemoved {
				t.Errorf("got drop %q ids %v removed %d; want %q %s %d", m.Drop, m.DocIDs, removed, tc.wantDrop, tc.wantIDs, tc.wantRemoved)
			}
		})
	}
}

// The flow's stages declare tables that the driver finds in order.
func TestFlowOrder(t *testing.T) {
	flow := []pipeline.Stage{CorpusStage(), GenerateStage(&Deps{}), FilterStage(), MineStage(&Deps{}), LabelStage(&Deps{}), ExportStage(nil)}
	if err := pipeline.CheckOrder(flow); err != nil {
		t.Fatal(err)
	}
	for i, st := range flow {
		if i > 0 && len(st.Reads) == 0 {
			t.Errorf("stage %s declares no table it reads", st.Name)
		}
		if len(st.Writes) == 0 && st.Name != "export" {
			t.Errorf("stage %s declares no table it writes", st.Name)
		}
	}
	reversed := []pipeline.Stage{flow[2], flow[1]}
	if err := pipeline.CheckOrder(reversed); err == nil {
		t.Error("filter before generate: no error")
	}
}
