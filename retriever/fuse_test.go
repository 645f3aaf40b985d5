package retriever

import (
	"math"
	"slices"
	"testing"
)

func TestRRF(t *testing.T) {
	for _, tc := range []struct {
		name  string
		k, n  int
		lists [][]string
		want  []string
	}{
		{"one list keeps its order", 60, 0, [][]string{{"a", "b", "c"}}, []string{"a", "b", "c"}},
		{"two lists beat one", 60, 0, [][]string{{"a", "b", "c"}, {"c", "b", "x"}}, []string{"c", "b", "a", "x"}},
		// a and c: 1/61 + 1/63 each (> b: 2/62); both best rank 1: the earlier list's wins.
		{"symmetric tie goes to the earlier list", 60, 0, [][]string{{"a", "b", "c"}, {"c", "b", "a"}}, []string{"a", "c", "b"}},
		{"top n", 60, 2, [][]string{{"a", "b", "c"}, {"d", "e"}}, []string{"a", "d"}},
		{"small k favours the top", 1, 0, [][]string{{"a", "b", "c", "d"}, {"d", "c", "b", "a"}}, []string{"a", "d", "b", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := RRF(tc.k, tc.n, tc.lists...)
			var ids []string
			for _, f := range got {
				ids = append(ids, f.ID)
			}
			if len(ids) != len(tc.want) {
				t.Fatalf("got %v, want %v", ids, tc.want)
			}
			for i := range ids {
				if ids[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", ids, tc.want)
				}
			}
		})
	}
	got := RRF(60, 0, []string{"a", "b"}, []string{"b"})
	if math.Abs(got[0].Score-(1.0/62+1.0/61)) > 1e-12 {
		t.Errorf("score of b = %v, want 1/62 + 1/61", got[0].Score)
	}
}

// FirstPass is the rule mining, the report and eval share: one run as it
// is (not cut to n), several fused by RRF and cut to n.
func TestFirstPass(t *testing.T) {
	one := []string{"a", "b", "c"}
	if got := FirstPass(60, 2, one); !slices.Equal(got, one) {
		t.Errorf("one run: %v, want it as it is %v", got, one)
	}
	got := FirstPass(60, 2, []string{"a", "b", "c"}, []string{"b", "c", "a"})
	if want := []string{"b", "a"}; !slices.Equal(got, want) {
		t.Errorf("two runs: %v, want %v", got, want)
	}
	hits := FirstPassHits(60, 2, []Hit{{DocID: "a", Rank: 1, Score: 7.5}, {DocID: "b", Rank: 2, Score: 3}})
	if len(hits) != 2 || hits[0] != (Fused{ID: "a", Score: 7.5}) || hits[1] != (Fused{ID: "b", Score: 3}) {
		t.Errorf("one run of hits: %v, want its own scores", hits)
	}
	fused := FirstPassHits(60, 0, []Hit{{DocID: "a"}, {DocID: "b"}}, []Hit{{DocID: "b"}, {DocID: "a"}})
	if want := RRF(60, 0, []string{"a", "b"}, []string{"b", "a"}); !slices.Equal(fused, want) {
		t.Errorf("two runs of hits: %v, want RRF's %v", fused, want)
	}
}
