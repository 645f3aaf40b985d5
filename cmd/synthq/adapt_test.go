package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/synthq/synthq/adapter"
	"github.com/synthq/synthq/internal/fakes"
)

var adaptPassages = flag.Int("adapt-passages", 1000, "TestAdapterSciFact: passages asked about (0: all of SciFact)")

// evalJSON runs synthq eval with --json and returns its metrics.
func evalJSON(t *testing.T, args ...string) map[string]float64 {
	t.Helper()
	code, msg := synthq(t, context.Background(), append([]string{"eval", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("eval %v: exit %d: %s", args, code, msg)
	}
	var m map[string]float64
	if err := json.Unmarshal([]byte(msg), &m); err != nil {
		t.Fatalf("eval --json output %q: %v", msg, err)
	}
	return m
}

// writeIdentityAdapter writes an identity adapter of model and dim.
func writeIdentityAdapter(t *testing.T, path, model string, dim int) {
	t.Helper()
	m, _ := adapter.NewModel(dim, 0, 0)
	var b bytes.Buffer
	if err := adapter.WriteSafetensors(&b, m.Matrix(), dim, map[string]string{"embed_model": model, "dims": strconv.Itoa(dim)}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// synthq adapt on the test corpus: it reuses the vectors the run stored
// (only what the run never embedded is fetched, and a second adapt fetches
// nothing), writes the same bytes again for the same seed, records itself
// for the report, and eval applies what it wrote.
func TestAdaptCommand(t *testing.T) {
	emb := fakes.NewEmbedder("vllm", "hash-bow", 64)
	defer emb.Close()
	inputs := embedInputs(emb)
	out := t.TempDir()
	embed := []string{"--embed-url", emb.URL(), "--embed-model", "hash-bow", "--query-prefix", "query: ", "--passage-prefix", "passage: "}
	if code, msg := synthq(t, context.Background(), append([]string{"run", "--offline", "--corpus", corpus, "--out", out, "--quiet",
		"--min-candidates", "5", "--retriever", "bm25,dense"}, embed...)...); code != 0 {
		t.Fatalf("run: exit %d: %s", code, msg)
	}
	embeddedByRun := map[string]bool{}
	for _, in := range inputs() {
		embeddedByRun[in] = true
	}
	store := filepath.Join(out, "store")
	adir := filepath.Join(out, "adapter")
	// The run's embed settings are the default: no embed flag needed but the URL's.
	code, msg := synthq(t, context.Background(), "adapt", "--store", store, "--out", adir, "--epochs", "3")
	if code != 0 {
		t.Fatalf("adapt: exit %d: %s", code, msg)
	}
	for _, in := range inputs() {
		if embeddedByRun[in] {
			t.Errorf("adapt embedded %q again though the run stored its vector", in)
		}
	}
	for _, want := range []string{"epoch 0:", "epoch 1:", "train and", "dev nDCG@10"} {
		if !strings.Contains(msg, want) {
			t.Errorf("adapt output lacks %q:\n%s", want, msg)
		}
	}
	st1 := readFile(t, filepath.Join(adir, "adapter.safetensors"))
	js1 := readFile(t, filepath.Join(adir, "adapter.json"))
	requests := emb.Counter.Total()
	if code, msg := synthq(t, context.Background(), "adapt", "--store", store, "--out", adir, "--epochs", "3", "--quiet"); code != 0 {
		t.Fatalf("adapt again: exit %d: %s", code, msg)
	}
	if n := emb.Counter.Total() - requests; n != 0 {
		t.Errorf("a second adapt sent %d embeddings requests, want 0", n)
	}
	if readFile(t, filepath.Join(adir, "adapter.safetensors")) != st1 || readFile(t, filepath.Join(adir, "adapter.json")) != js1 {
		t.Error("the same adapt wrote other bytes")
	}
	a, err := adapter.ReadSafetensors(filepath.Join(adir, "adapter.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	var rec adapter.Record
	if err := json.Unmarshal([]byte(js1), &rec); err != nil {
		t.Fatal(err)
	}
	if a.Dim != 64 || a.Meta["embed_model"] != "hash-bow" || a.Meta["query_prefix"] != "query: " ||
		a.Meta["data_fingerprint"] != rec.DataFingerprint || len(rec.DataFingerprint) != 64 || len(rec.Curve) != rec.Epochs+1 {
		t.Errorf("metadata %v / adapter.json %+v", a.Meta, rec.Summary)
	}
	// The report shows the adapter: before/after on the dev lists and the curve.
	page := filepath.Join(out, "report.html")
	if code, msg := synthq(t, context.Background(), "report", "--store", store, "--out", page); code != 0 {
		t.Fatalf("report: exit %d: %s", code, msg)
	}
	html := readFile(t, page)
	for _, want := range []string{`data-section="adapter"`, `data-table="adapter-curve"`, "hash-bow",
		fmt.Sprintf("%.4f", rec.Before.NDCG10), fmt.Sprintf("%.4f", rec.After.NDCG10)} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// Another seed: other bytes.
	if code, msg := synthq(t, context.Background(), "adapt", "--store", store, "--out", adir, "--epochs", "3", "--quiet", "--seed", "2"); code != 0 {
		t.Fatalf("adapt --seed 2: exit %d: %s", code, msg)
	}
	if readFile(t, filepath.Join(adir, "adapter.safetensors")) == st1 {
		t.Error("--seed 2 wrote the same adapter")
	}

	// A run whose store holds no vector (BM25 only) is adapted through the
	// endpoint: the passages of its lists and its queries are embedded.
	out2 := t.TempDir()
	if code, msg := synthq(t, context.Background(), "run", "--offline", "--corpus", corpus, "--out", out2, "--quiet", "--min-candidates", "5"); code != 0 {
		t.Fatalf("bm25 run: exit %d: %s", code, msg)
	}
	if code, msg := synthq(t, context.Background(), append([]string{"adapt", "--store", filepath.Join(out2, "store"), "--out", filepath.Join(out2, "a"), "--epochs", "2", "--quiet", "--rank", "4"}, embed...)...); code != 0 {
		t.Fatalf("adapt of a bm25 store: exit %d: %s", code, msg)
	}
	if got := len(inputs()); got == 0 {
		t.Error("adapt of a bm25 store embedded nothing")
	}
	if code, msg := synthq(t, context.Background(), "adapt", "--store", filepath.Join(out2, "store"), "--out", filepath.Join(out2, "b")); code != 1 || !strings.Contains(msg, "--embed-model") {
		t.Errorf("adapt without an embed model: exit %d: %s", code, msg)
	}

	// A run on a prepared corpus: adapt --prepared reads the passage vectors
	// there and embeds only queries the run did not.
	prep, out3 := t.TempDir(), t.TempDir()
	base := append([]string{"--offline", "--quiet", "--min-candidates", "5", "--retriever", "bm25,dense"}, embed...)
	if code, msg := synthq(t, context.Background(), append([]string{"prepare", "--corpus", corpus, "--out", prep}, base...)...); code != 0 {
		t.Fatalf("prepare: exit %d: %s", code, msg)
	}
	if code, msg := synthq(t, context.Background(), append([]string{"run", "--out", out3, "--prepared", prep}, base...)...); code != 0 {
		t.Fatalf("run --prepared: exit %d: %s", code, msg)
	}
	inputs()
	if code, msg := synthq(t, context.Background(), "adapt", "--store", filepath.Join(out3, "store"), "--out", filepath.Join(out3, "a"), "--epochs", "1", "--prepared", prep); code != 0 {
		t.Fatalf("adapt --prepared: exit %d: %s", code, msg)
	}
	if got := inputs(); len(got) != 0 {
		t.Errorf("adapt --prepared embedded %d texts (%q…) the prepared corpus and the run hold", len(got), got[0])
	}
}

// An identity adapter changes no figure of eval; an adapter of another
// model or dimension is refused with both named.
func TestEvalAdapter(t *testing.T) {
	queries, qrels := smallBEIR(t)
	emb := fakes.NewEmbedder("vllm", "e5", 64)
	defer emb.Close()
	dir := t.TempDir()
	dense := []string{"--corpus", corpus, "--queries", queries, "--qrels", qrels, "--retriever", "dense", "--embed-url", emb.URL(), "--embed-model", "e5"}
	id := filepath.Join(dir, "id.safetensors")
	writeIdentityAdapter(t, id, "e5", 64)
	base := evalJSON(t, dense...)
	with := evalJSON(t, append(dense, "--adapter", id)...)
	for k, v := range base {
		if with[k] != v {
			t.Errorf("identity adapter changed %s: %v → %v", k, v, with[k])
		}
	}
	other := filepath.Join(dir, "other.safetensors")
	writeIdentityAdapter(t, other, "bge-small", 64)
	code, msg := synthq(t, context.Background(), append([]string{"eval"}, append(dense, "--adapter", other)...)...)
	if code != 1 || !strings.Contains(msg, `"bge-small"`) || !strings.Contains(msg, `"e5"`) {
		t.Errorf("adapter of another model: exit %d: %s", code, msg)
	}
	wide := filepath.Join(dir, "wide.safetensors")
	writeIdentityAdapter(t, wide, "e5", 32)
	code, msg = synthq(t, context.Background(), append([]string{"eval"}, append(dense, "--adapter", wide)...)...)
	if code != 1 || !strings.Contains(msg, "32 dims") || !strings.Contains(msg, "64 dims") {
		t.Errorf("adapter of another dimension: exit %d: %s", code, msg)
	}
	code, msg = synthq(t, context.Background(), "eval", "--corpus", corpus, "--queries", queries, "--qrels", qrels, "--adapter", id)
	if code != 1 || !strings.Contains(msg, "--retriever dense") {
		t.Errorf("adapter without a dense run: exit %d: %s", code, msg)
	}
}

// The acceptance check: on SciFact, an adapter trained on the
// offline flow's lists (extractive queries, lexical teacher, bm25+dense
// mining through the fake hashed bag-of-words embedder) raises dense
// nDCG@10 on SciFact's test queries and qrels, which training never sees.
func TestAdapterSciFact(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "data", "scifact")
	if _, err := os.Stat(filepath.Join(dir, "corpus.jsonl")); err != nil {
		t.Skipf("SciFact not found at %s (read from ../shared, never copied into the repo): %v", dir, err)
	}
	emb := fakes.NewEmbedder("vllm", "hash-bow", 256)
	defer emb.Close()
	out := t.TempDir()
	embed := []string{"--embed-url", emb.URL(), "--embed-model", "hash-bow"}
	args := append([]string{"run", "--offline", "--corpus", filepath.Join(dir, "corpus.jsonl"), "--out", out, "--quiet",
		"--retriever", "bm25,dense", "--format", "jsonl"}, embed...)
	if *adaptPassages > 0 {
		args = append(args, "--max-passages", strconv.Itoa(*adaptPassages))
	}
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("run: exit %d: %s", code, msg)
	}
	code, msg := synthq(t, context.Background(), "adapt", "--store", filepath.Join(out, "store"), "--out", filepath.Join(out, "adapter"))
	if code != 0 {
		t.Fatalf("adapt: exit %d: %s", code, msg)
	}
	t.Log(msg)
	ev := append([]string{"--corpus", filepath.Join(dir, "corpus.jsonl"), "--queries", filepath.Join(dir, "queries.jsonl"),
		"--qrels", filepath.Join(dir, "qrels", "test.tsv"), "--retriever", "dense"}, embed...)
	before := evalJSON(t, ev...)
	after := evalJSON(t, append(ev, "--adapter", filepath.Join(out, "adapter", "adapter.safetensors"))...)
	t.Logf("SciFact test, dense nDCG@10 %.4f → %.4f, R@100 %.4f → %.4f, MRR@10 %.4f → %.4f (%v queries)",
		before["ndcg@10"], after["ndcg@10"], before["recall@100"], after["recall@100"], before["mrr@10"], after["mrr@10"], after["queries"])
	if after["ndcg@10"] <= before["ndcg@10"] {
		t.Errorf("the adapter did not raise dense nDCG@10 on SciFact test: %.4f → %.4f", before["ndcg@10"], after["ndcg@10"])
	}
}
