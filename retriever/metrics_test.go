package retriever

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestEvaluateByHand checks the metrics against values worked out by hand:
// graded gains (trec_eval's linear nDCG), grade 0 not relevant, a judged
// query missing from the run scoring zero, a query with no relevant
// passage left out.
func TestEvaluateByHand(t *testing.T) {
	qrels := Qrels{
		"q1": {"d1": 2, "d2": 1, "d3": 0},
		"q2": {"d5": 1},
		"q3": {"d9": 0},
	}
	runs := map[string][]string{"q1": {"d3", "d1", "x", "d2"}, "q3": {"d9"}}
	m := Evaluate(qrels, runs)
	idcg := 2/math.Log2(2) + 1/math.Log2(3)
	dcg := 2/math.Log2(3) + 1/math.Log2(5)
	want := Metrics{NDCG10: dcg / idcg / 2, Recall100: 0.5, Recall1k: 0.5, MRR10: 0.25, Queries: 2}
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"nDCG@10", m.NDCG10, want.NDCG10}, {"R@100", m.Recall100, want.Recall100}, {"R@1000", m.Recall1k, want.Recall1k}, {"MRR@10", m.MRR10, want.MRR10}} {
		if math.Abs(c.got-c.want) > 1e-12 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if m.Queries != 2 {
		t.Errorf("queries = %d, want 2 (q3 has no relevant passage)", m.Queries)
	}
	// Relevant passages past the cut-offs count only where they should.
	long := make([]string, 200)
	for i := range long {
		long[i] = "n"
	}
	long[9], long[10], long[150] = "a", "b", "c"
	m = Evaluate(Qrels{"q": {"a": 1, "b": 1, "c": 1}}, map[string][]string{"q": long})
	if math.Abs(m.MRR10-0.1) > 1e-12 || math.Abs(m.Recall100-2.0/3) > 1e-12 || m.Recall1k != 1 {
		t.Errorf("cut-offs: MRR@10 %v (want 0.1), R@100 %v (want 2/3), R@1000 %v (want 1)", m.MRR10, m.Recall100, m.Recall1k)
	}
}

func TestReadQrelsFormats(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"header_crlf.tsv": "query-id\tcorpus-id\tscore\r\nq1\td1\t2\r\nq1\td2\t0\r\n",
		"plain_lf.tsv":    "q1\td1\t2\nq1\td2\t0\n",
		"trec.txt":        "q1\t0\td1\t2\nq1\t0\td2\t0\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		q, err := ReadQrels(p)
		if err != nil || q["q1"]["d1"] != 2 || q["q1"]["d2"] != 0 || len(q["q1"]) != 2 {
			t.Errorf("%s: %v %v", name, q, err)
		}
	}
	p := filepath.Join(dir, "bad.tsv")
	os.WriteFile(p, []byte("q1\td1\t2\nq1\td2\tx\n"), 0o644)
	if _, err := ReadQrels(p); err == nil || err.Error() != p+`:2: score "x" is not an integer` {
		t.Errorf("bad score: %v", err)
	}
}
