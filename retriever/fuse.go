package retriever

import (
	"cmp"
	"slices"
)

// Fused is one passage of a fused ranking.
type Fused struct {
	ID    string
	Score float64
}

// RRF fuses ranked lists of passage ids (best first) by reciprocal rank
// fusion (Cormack et al., 2009): score(d) = Σ 1/(k + rank(d)) over the lists
// holding d, ranks from 1. It returns the top n (all if n <= 0), best first;
// equal scores go to the passage with the better single rank, then to the
// earlier list, then by id, so the order never depends on map iteration.
// Cost: O(m log m) for m distinct passages.
func RRF(k, n int, lists ...[]string) []Fused {
	type agg struct {
		id       string
		score    float64
		bestRank int
		bestList int
	}
	byID := map[string]int{}
	var all []agg
	for li, l := range lists {
		for r, id := range l {
			rank := r + 1
			i, ok := byID[id]
			if !ok {
				i = len(all)
				byID[id] = i
				all = append(all, agg{id: id, bestRank: rank, bestList: li})
			}
			a := &all[i]
			a.score += 1 / float64(k+rank)
			if rank < a.bestRank {
				a.bestRank, a.bestList = rank, li
			}
		}
	}
	slices.SortFunc(all, func(a, b agg) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		if c := cmp.Compare(a.bestRank, b.bestRank); c != 0 {
			return c
		}
		if c := cmp.Compare(a.bestList, b.bestList); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	if n > 0 && len(all) > n {
		all = all[:n]
	}
	out := make([]Fused, len(all))
	for i, a := range all {
		out[i] = Fused{ID: a.id, Score: a.score}
	}
	return out
}

// FirstPass is a query's first-pass ranking from its runs' lists of passage
// ids (best first), the one rule mining, the report and eval share: a single
// run's list as it is; several fused by RRF with constant k, cut to n.
func FirstPass(k, n int, runs ...[]string) []string {
	if len(runs) == 1 {
		return runs[0]
	}
	var ids []string
	for _, f := range RRF(k, n, runs...) {
		ids = append(ids, f.ID)
	}
	return ids
}

// FirstPassHits is FirstPass over hit lists, with scores: a single run's
// hits as they are (its own scores), or the fused passages with their RRF
// scores.
func FirstPassHits(k, n int, runs ...[]Hit) []Fused {
	var out []Fused
	if len(runs) == 1 {
		for _, h := range runs[0] {
			out = append(out, Fused{ID: h.DocID, Score: float64(h.Score)})
		}
		return out
	}
	ids := make([][]string, len(runs))
	for r, hits := range runs {
		for _, h := range hits {
			ids[r] = append(ids[r], h.DocID)
		}
	}
	return RRF(k, n, ids...)
}
