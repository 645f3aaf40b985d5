package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/synthq/synthq/internal/fakes"
)

// embedInputs records every text an embeddings fake embedded (refused
// requests excluded).
func embedInputs(f *fakes.Embedder) func() []string {
	var mu sync.Mutex
	var seen []string
	f.Served = func(in []string) {
		mu.Lock()
		seen = append(seen, in...)
		mu.Unlock()
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := seen
		seen = nil
		return out
	}
}

// Dense mining through a TEI-style /v1/embeddings fake, fused with BM25:
// every passage and query is embedded once with its prefix (a second run
// embeds nothing), TEI's batch limit is found on the way, the lists differ
// from BM25's alone, and a changed --rrf-k changes the lists without a
// request.
func TestDenseMiningFusedWithBM25(t *testing.T) {
	emb := fakes.NewEmbedder("tei", "intfloat/e5-base-v2", 64)
	defer emb.Close()
	inputs := embedInputs(emb)
	out := t.TempDir()
	base := []string{"run", "--offline", "--corpus", corpus, "--out", out, "--quiet", "--min-candidates", "5", "--roundtrip-k", "20"}
	if code, msg := synthq(t, context.Background(), base...); code != 0 {
		t.Fatalf("bm25 run: exit %d: %s", code, msg)
	}
	bm25Only := readFile(t, filepath.Join(out, "train.arrow"))
	dense := append(base, "--retriever", "bm25,dense", "--embed-url", emb.Server.URL, "--embed-model", "intfloat/e5-base-v2",
		"--query-prefix", "query: ", "--passage-prefix", "passage: ", "--embed-batch", "64")
	if code, msg := synthq(t, context.Background(), dense...); code != 0 {
		t.Fatalf("bm25,dense run: exit %d: %s", code, msg)
	}
	m := manifestOf(t, out)
	mine := m.Stages["mine"].Counts
	got := inputs()
	passages, queries := 0, 0
	seen := map[string]bool{}
	for _, in := range got {
		if seen[in] {
			t.Errorf("embedded twice: %q", in)
		}
		seen[in] = true
		switch {
		case strings.HasPrefix(in, "passage: "):
			passages++
		case strings.HasPrefix(in, "query: "):
			queries++
		default:
			t.Errorf("input without its prefix: %q", in)
		}
	}
	if passages != 40 || int64(queries) != mine["dense_searched"] || queries == 0 {
		t.Errorf("embedded %d passages (want 40) and %d queries (want %d searched)", passages, queries, mine["dense_searched"])
	}
	if mine["bm25_cached"] == 0 || mine["bm25_searched"] != 0 {
		t.Errorf("adding dense re-ran BM25: counts %v", mine)
	}
	if readFile(t, filepath.Join(out, "train.arrow")) == bm25Only {
		t.Error("fusing dense changed no list")
	}
	if m.Run["embed_retries"] == nil {
		t.Error("manifest run facts lack embed_retries")
	}
	fused := readFile(t, filepath.Join(out, "train.arrow"))
	requests := emb.Counter.Total()

	// The same command again: everything from the store.
	if code, msg := synthq(t, context.Background(), dense...); code != 0 {
		t.Fatalf("repeat: exit %d: %s", code, msg)
	}
	if n := emb.Counter.Total() - requests; n != 0 {
		t.Errorf("repeat run sent %d embeddings requests, want 0", n)
	}
	if readFile(t, filepath.Join(out, "train.arrow")) != fused {
		t.Error("repeat run wrote other bytes")
	}
	// Another fusion constant: new lists, still no request.
	if code, msg := synthq(t, context.Background(), append(dense, "--rrf-k", "1")...); code != 0 {
		t.Fatalf("--rrf-k 1: exit %d: %s", code, msg)
	}
	if n := emb.Counter.Total() - requests; n != 0 {
		t.Errorf("--rrf-k change sent %d embeddings requests, want 0", n)
	}
	if readFile(t, filepath.Join(out, "train.arrow")) == fused {
		t.Error("--rrf-k 1 changed no list")
	}
}

// Dense alone, through a vLLM-style fake that refuses one over-long
// passage, with no window cut on our side (--embed-max-tokens -1: nothing
// may be cut, so nothing is cut again either): the passage is a failed item
// (exit 3, listed by stats), every other passage is indexed, and a plain
// re-run does not ask about it again.
func TestDenseRefusedPassage(t *testing.T) {
	emb := fakes.NewEmbedder("vllm", "bge", 32)
	emb.MaxInputWords = 45 // kb002 + prefix is 39 words; one passage is made longer below
	defer emb.Close()
	dir := t.TempDir()
	long := `{"_id": "kb999", "title": "A very long page", "text": "` + strings.Repeat("filler words about nothing ", 20) + `"}`
	c := filepath.Join(dir, "corpus.jsonl")
	if err := os.WriteFile(c, []byte(readFile(t, corpus)+long+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	args := []string{"run", "--offline", "--corpus", c, "--out", out, "--quiet", "--min-candidates", "5",
		"--retriever", "dense", "--embed-url", emb.URL(), "--embed-model", "bge", "--roundtrip-k", "0", "--embed-max-tokens", "-1"}
	code, msg := synthq(t, context.Background(), args...)
	if code != exitFailedItems || !strings.Contains(msg, "1 failed item") {
		t.Fatalf("exit %d, want 3 with one failed item: %s", code, msg)
	}
	_, msg = synthq(t, context.Background(), "stats", "--store", filepath.Join(out, "store"))
	if !strings.Contains(msg, "passage kb999") || !strings.Contains(msg, "maximum context length") {
		t.Errorf("stats should name the refused passage and the server's reason: %s", msg)
	}
	mine := manifestOf(t, out).Stages["mine"].Counts
	if mine["passage_embedding_failed"] != 1 || mine["kept"] == 0 {
		t.Errorf("mine counts %v", mine)
	}
	n := emb.Counter.Total()
	if code, _ := synthq(t, context.Background(), args...); code != exitFailedItems || emb.Counter.Total() != n {
		t.Errorf("re-run: exit %d, %d new requests; want 3 and none", code, emb.Counter.Total()-n)
	}
	// With the default window, vLLM's stated count ("maximum context length
	// is 45 tokens. However, you requested 68 tokens") cuts it again, and
	// it is embedded.
	args[len(args)-1] = "512"
	args[5] = filepath.Join(dir, "cut")
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("default window: exit %d: %s", code, msg)
	}
	if mine := manifestOf(t, args[5]).Stages["mine"].Counts; mine["texts_cut_again"] != 1 || mine["passage_embedding_failed"] != 0 {
		t.Errorf("default window: mine counts %v, want the long page cut again once and embedded", mine)
	}
}

// Flag combinations that cannot work are refused before any work.
func TestRetrieverFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--retriever", "dense"}, "needs --embed-model"},
		{[]string{"--retriever", "dense", "--embed-model", "m"}, "needs --embed-url"},
		{[]string{"--retriever", "splade"}, `unknown "splade"`},
		{[]string{"--retriever", "dense", "--embed-model", "a", "--embed-model", "b", "--embed-url", "http://x", "--embed-url", "http://y", "--embed-url", "http://z"}, "one URL for all models or one per model"},
		{[]string{"--retriever", "dense", "--embed-model", "a", "--embed-model", "b", "--embed-url", "http://x", "--query-prefix", "q: ", "--query-prefix", "q: ", "--query-prefix", "q: "}, "one for all or one per model"},
		{[]string{"--rrf-k", "-1"}, "--rrf-k must be at least 1"},
		{[]string{"--dedup-threshold", "1.5"}, "--dedup-threshold must be in (0, 1]"},
	} {
		args := append([]string{"run", "--offline", "--corpus", corpus, "--out", t.TempDir(), "--quiet"}, tc.args...)
		code, msg := synthq(t, context.Background(), args...)
		if code != exitError || !strings.Contains(msg, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q: %s", tc.args, code, exitError, tc.want, msg)
		}
	}
}

// smallBEIR writes queries and qrels (header, CRLF, graded, one unjudged
// query) for the test corpus.
func smallBEIR(t *testing.T) (queries, qrels string) {
	dir := t.TempDir()
	queries = filepath.Join(dir, "queries.jsonl")
	qrels = filepath.Join(dir, "qrels.tsv")
	q := `{"_id": "1", "text": "how much disk space does the desktop client need"}
{"_id": "2", "text": "sign in with single sign-on SSO"}
{"_id": "3", "text": "recover after losing the authenticator phone"}
{"_id": "4", "text": "a query nobody judged"}
`
	r := "query-id\tcorpus-id\tscore\r\n1\tkb001\t2\r\n2\tkb002\t1\r\n2\tkb001\t0\r\n3\tkb015\t1\r\n"
	if err := os.WriteFile(queries, []byte(q), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(qrels, []byte(r), 0o644); err != nil {
		t.Fatal(err)
	}
	return queries, qrels
}

// synthq eval: --json prints exactly the documented keys, --run writes a
// TREC run, unjudged queries are skipped, and dense and fused runs work
// against an embeddings endpoint.
func TestEvalCommand(t *testing.T) {
	queries, qrels := smallBEIR(t)
	emb := fakes.NewEmbedder("vllm", "e5", 64)
	defer emb.Close()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"bm25", nil},
		{"dense", []string{"--retriever", "dense", "--embed-url", emb.URL(), "--embed-model", "e5", "--query-prefix", "query: ", "--passage-prefix", "passage: "}},
		{"bm25,dense", []string{"--retriever", "bm25,dense", "--embed-url", emb.URL(), "--embed-model", "e5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := filepath.Join(t.TempDir(), "run.trec")
			args := append([]string{"eval", "--corpus", corpus, "--queries", queries, "--qrels", qrels, "--json", "--run", run}, tc.args...)
			code, msg := synthq(t, context.Background(), args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, msg)
			}
			var m map[string]float64
			if err := json.Unmarshal([]byte(msg), &m); err != nil {
				t.Fatalf("--json output %q: %v", msg, err)
			}
			for _, k := range []string{"ndcg@10", "recall@100", "recall@1000", "mrr@10", "queries"} {
				if _, ok := m[k]; !ok {
					t.Errorf("--json lacks %q: %s", k, msg)
				}
			}
			if len(m) != 5 || m["queries"] != 3 {
				t.Errorf("--json %s: want exactly 5 keys and 3 judged queries", msg)
			}
			if m["recall@100"] != 1 || m["ndcg@10"] <= 0.3 {
				t.Errorf("metrics implausible for a 40-passage corpus: %s", msg)
			}
			lines := strings.Split(strings.TrimSpace(readFile(t, run)), "\n")
			perQuery := map[string]int{}
			for _, l := range lines {
				perQuery[strings.Fields(l)[0]]++
			}
			if len(perQuery) != 3 || perQuery["4"] != 0 || (tc.name != "bm25" && perQuery["1"] != 40) {
				t.Errorf("run file: lines per query %v; want the 3 judged queries (all 40 passages for dense runs)", perQuery)
			}
			f := strings.Fields(lines[0])
			if len(f) != 6 || f[1] != "Q0" || f[3] != "1" || !strings.HasPrefix(f[5], "synthq-") {
				t.Errorf("run line %q is not TREC format (qid Q0 docid rank score tag)", lines[0])
			}
		})
	}
}

// The acceptance check through the command itself: synthq eval on
// BEIR SciFact (test qrels) matches Anserini's BM25 flat regression.
func TestEvalSciFactParity(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "data", "scifact")
	if _, err := os.Stat(filepath.Join(dir, "corpus.jsonl")); err != nil {
		t.Skipf("SciFact not found at %s (read from ../shared, never copied into the repo): %v", dir, err)
	}
	qrels := filepath.Join(dir, "qrels", "test.tsv")
	code, msg := synthq(t, context.Background(), "eval", "--corpus", filepath.Join(dir, "corpus.jsonl"),
		"--queries", filepath.Join(dir, "queries.jsonl"), "--qrels", qrels, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	var m map[string]float64
	json.Unmarshal([]byte(msg), &m)
	if d := m["ndcg@10"] - 0.6789; d < -0.005 || d > 0.005 {
		t.Errorf("nDCG@10 %.4f, want 0.6789 ± 0.005", m["ndcg@10"])
	}
	if d := m["recall@100"] - 0.9253; d < -0.01 || d > 0.01 {
		t.Errorf("R@100 %.4f, want 0.9253 ± 0.01", m["recall@100"])
	}
	if m["queries"] != 300 {
		t.Errorf("queries %v, want 300", m["queries"])
	}
}
