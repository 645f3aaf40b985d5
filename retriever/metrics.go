package retriever

import (
	"math"
	"sort"
)

// Qrels maps query id -> passage id -> graded relevance (0 = not relevant).
type Qrels map[string]map[string]int

// Metrics are the mean ranking metrics over the judged queries.
type Metrics struct {
	NDCG10    float64 `json:"ndcg@10"`
	Recall100 float64 `json:"recall@100"`
	Recall1k  float64 `json:"recall@1000"`
	MRR10     float64 `json:"mrr@10"`
	Queries   int     `json:"queries"`
}

// Evaluate computes nDCG@10 (trec_eval's linear gain: gain = grade), recall at
// 100 and 1000, and MRR@10 for every query in qrels that has at least one
// relevant passage. runs maps query id -> ranked passage ids, best first; a
// judged query missing from runs scores zero.
func Evaluate(qrels Qrels, runs map[string][]string) Metrics {
	var m Metrics
	for qid, judged := range qrels {
		var grades []int
		nrel := 0
		for _, g := range judged {
			if g > 0 {
				grades = append(grades, g)
				nrel++
			}
		}
		if nrel == 0 {
			continue
		}
		m.Queries++
		sort.Sort(sort.Reverse(sort.IntSlice(grades)))
		var idcg float64
		for i := 0; i < len(grades) && i < 10; i++ {
			idcg += float64(grades[i]) / math.Log2(float64(i+2))
		}
		ranked := runs[qid]
		var dcg, rr float64
		var r100, r1k int
		for i, d := range ranked {
			g := judged[d]
			if g <= 0 {
				continue
			}
			if i < 10 {
				dcg += float64(g) / math.Log2(float64(i+2))
				if rr == 0 {
					rr = 1 / float64(i+1)
				}
			}
			if i < 100 {
				r100++
			}
			if i < 1000 {
				r1k++
			}
		}
		m.NDCG10 += dcg / idcg
		m.MRR10 += rr
		m.Recall100 += float64(r100) / float64(nrel)
		m.Recall1k += float64(r1k) / float64(nrel)
	}
	if m.Queries > 0 {
		q := float64(m.Queries)
		m.NDCG10 /= q
		m.MRR10 /= q
		m.Recall100 /= q
		m.Recall1k /= q
	}
	return m
}
