package retriever

import (
	"math"
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
