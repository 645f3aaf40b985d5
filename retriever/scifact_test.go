package retriever

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sciFactDir is where the shared BEIR SciFact copy lives (never in the repo:
// its licence is CC BY-NC).
func sciFactDir(t testing.TB) string {
	dir := filepath.Join("..", "..", "shared", "data", "scifact")
	if _, err := os.Stat(filepath.Join(dir, "corpus.jsonl")); err != nil {
		t.Skipf("SciFact not found at %s (it is read from ../shared, never copied into the repo): %v", dir, err)
	}
	return dir
}

type beirDoc struct {
	ID    string `json:"_id"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

func readJSONL[T any](t testing.TB, path string) []T {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, v)
	}
	return out
}

func readQrels(t testing.TB, path string) Qrels {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	q := Qrels{}
	for i, line := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n") {
		f := strings.Split(line, "\t")
		if i == 0 || len(f) != 3 {
			continue
		}
		g, _ := strconv.Atoi(f[2])
		if q[f[0]] == nil {
			q[f[0]] = map[string]int{}
		}
		q[f[0]][f[1]] = g
	}
	return q
}

func buildSciFact(t testing.TB, dir string) *BM25 {
	b := NewBM25Builder(nil, nil)
	for _, d := range readJSONL[beirDoc](t, filepath.Join(dir, "corpus.jsonl")) {
		b.Add(d.ID, d.Title+" "+d.Text)
	}
	return b.Build()
}

// TestSciFactAnseriniParity checks BM25 against Anserini's BEIR "flat"
// regression on SciFact test: nDCG@10 0.6789 (±0.005), R@100 0.9253 (±0.01).
func TestSciFactAnseriniParity(t *testing.T) {
	dir := sciFactDir(t)
	ix := buildSciFact(t, dir)
	qrels := readQrels(t, filepath.Join(dir, "qrels", "test.tsv"))
	runs := map[string][]string{}
	for _, q := range readJSONL[beirDoc](t, filepath.Join(dir, "queries.jsonl")) {
		if _, ok := qrels[q.ID]; !ok {
			continue
		}
		hits, err := ix.Search(context.Background(), q.Text, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hits {
			runs[q.ID] = append(runs[q.ID], h.DocID)
		}
	}
	m := Evaluate(qrels, runs)
	t.Logf("SciFact test: nDCG@10 %.4f R@100 %.4f R@1000 %.4f MRR@10 %.4f over %d queries", m.NDCG10, m.Recall100, m.Recall1k, m.MRR10, m.Queries)
	if m.Queries != 300 {
		t.Errorf("queries = %d, want 300", m.Queries)
	}
	if math.Abs(m.NDCG10-0.6789) > 0.005 {
		t.Errorf("nDCG@10 = %.4f, want 0.6789 ± 0.005", m.NDCG10)
	}
	if math.Abs(m.Recall100-0.9253) > 0.01 {
		t.Errorf("R@100 = %.4f, want 0.9253 ± 0.01", m.Recall100)
	}
}
