package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/stages"
)

func manifestOf(t testing.TB, out string) stages.Manifest {
	t.Helper()
	var m stages.Manifest
	b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// --queries-per-type 3 asks once with n=3 where the server honours n (vLLM),
// and falls back to one request per sample where it answers one choice
// (Ollama) or refuses n > 1 (llama.cpp). Every slot gets its answer either way.
func TestQueriesPerTypeWithAndWithoutN(t *testing.T) {
	cases := []struct {
		mode           string
		minReq, maxReq int64
	}{
		{"", 80, 80},         // 40 passages × 2 types, one request each
		{"ignore", 240, 240}, // each request (n or not) yields one answer
		{"reject", 241, 241}, // one n request finds out, the others wait for it
	}
	for _, tc := range cases {
		t.Run("nmode="+tc.mode, func(t *testing.T) {
			out := t.TempDir()
			llm, _, args := fakeArgs(t, "tei", out)
			llm.NMode = tc.mode
			args = append(args, "--query-types", "questions,titles", "--queries-per-type", "3")
			if code, msg := synthq(t, context.Background(), args...); code != 0 {
				t.Fatalf("exit %d: %s", code, msg)
			}
			if n := llm.Counter.Total(); n < tc.minReq || n > tc.maxReq {
				t.Errorf("%d requests, want %d..%d", n, tc.minReq, tc.maxReq)
			}
			m := manifestOf(t, out)
			if got := m.Stages["filter"].Counts["answers"]; got != 240 {
				t.Errorf("%d answers stored, want 240", got)
			}
			if m.Failures != 0 {
				t.Errorf("%d failures", m.Failures)
			}
			// Samples of one slot group differ (distinct choices/seeds).
			if m.Stages["filter"].Counts["kept"] < 120 {
				t.Errorf("only %d queries kept of 240: samples look identical", m.Stages["filter"].Counts["kept"])
			}
		})
	}
}

// Raising --queries-per-type keeps the answers already paid for.
func TestRaisingQueriesPerTypeKeepsStoredAnswers(t *testing.T) {
	out := t.TempDir()
	llm, _, args := fakeArgs(t, "tei", out)
	args = append(args, "--query-types", "questions")
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	first := llm.Counter.Total()
	if code, msg := synthq(t, context.Background(), append(args, "--queries-per-type", "3")...); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	if first != 40 || llm.Counter.Total()-first != 40 {
		t.Errorf("requests: %d then %d; want 40, then 40 (one n=2 request per passage for the 2 new samples)", first, llm.Counter.Total()-first)
	}
	if llm.Counter.Repeated() != 0 {
		t.Errorf("%d requests repeated", llm.Counter.Repeated())
	}
	if got := manifestOf(t, out).Stages["generate"].Counts["cached"]; got != 40 {
		t.Errorf("cached %d, want the 40 first samples", got)
	}
}

// Zero sampling values reach the server as 0 (go-openai drops them), and
// --llm-extra keys are sent.
func TestZeroSamplingValuesReachTheServer(t *testing.T) {
	out := t.TempDir()
	llm, _, args := fakeArgs(t, "tei", out)
	var mu sync.Mutex
	var bodies []map[string]any
	llm.Inspect = func(b []byte) {
		var m map[string]any
		json.Unmarshal(b, &m)
		mu.Lock()
		bodies = append(bodies, m)
		mu.Unlock()
	}
	args = append(args, "--query-types", "keywords", "--temperature", "0", "--top-p", "0", "--llm-extra", `{"top_k":20}`, "--max-tokens", "32")
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	if len(bodies) != 40 {
		t.Fatalf("%d requests", len(bodies))
	}
	for _, b := range bodies {
		if b["temperature"] != 0.0 || b["top_p"] != 0.0 || b["top_k"] != 20.0 || b["max_tokens"] != 32.0 {
			t.Fatalf("request body sampling keys: temperature %v top_p %v top_k %v max_tokens %v",
				b["temperature"], b["top_p"], b["top_k"], b["max_tokens"])
		}
		if _, ok := b["n"]; ok {
			t.Fatalf("n sent with one query per type: %v", b["n"])
		}
	}
}

// Several --llm-url and --teacher-url endpoints share the work; the
// manifest says who served what.
func TestSeveralEndpoints(t *testing.T) {
	out := t.TempDir()
	llm, rr, args := fakeArgs(t, "tei", out)
	other := fakes.NewLLM(model)
	defer other.Close()
	rr2 := fakes.NewReranker("tei", "BAAI/bge-reranker-v2-m3")
	defer rr2.Close()
	args = append(args, "--llm-url", other.URL(), "--teacher-url", rr2.URL, "--query-types", "questions,claims")
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	a, b := llm.Counter.Total(), other.Counter.Total()
	if a+b != 80 || a == 0 || b == 0 {
		t.Errorf("requests split %d/%d, want both used and 80 in all", a, b)
	}
	if rr.Counter.Total() == 0 || rr2.Counter.Total() == 0 {
		t.Errorf("teacher requests split %d/%d, want both used", rr.Counter.Total(), rr2.Counter.Total())
	}
	m := manifestOf(t, out)
	for _, k := range []string{"llm_served_by_endpoint", "teacher_served_by_endpoint"} {
		if served, _ := m.Run[k].(map[string]any); len(served) != 2 {
			t.Errorf("manifest run.%s = %v", k, m.Run[k])
		}
	}
}

// --rpm paces requests, retries included: 40 requests at 1200 a minute (20
// a second, the bucket holding one second's worth) take at least a second.
func TestRPMLimitPacesRequests(t *testing.T) {
	out := t.TempDir()
	_, _, args := fakeArgs(t, "tei", out)
	start := time.Now()
	args = append(args, "--query-types", "questions", "--rpm", "1200", "--concurrency", "16")
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Errorf("40 requests at --rpm 1200 took %s, want ≥ ~1s", el)
	}
}

// Token totals and cost at the given prices land in the manifest and stats.
func TestTokensAndCost(t *testing.T) {
	out := t.TempDir()
	_, _, args := fakeArgs(t, "tei", out)
	args = append(args, "--query-types", "titles", "--price-input", "0.5", "--price-output", "2")
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	tok := manifestOf(t, out).Tokens
	if tok.PromptTokens == 0 || tok.CompletionTokens == 0 || tok.LastRunRequests != 40 {
		t.Fatalf("tokens %+v", tok)
	}
	want := (float64(tok.PromptTokens)*0.5 + float64(tok.CompletionTokens)*2) / 1e6
	if d := tok.Cost - want; d > 1e-12 || d < -1e-12 {
		t.Errorf("cost %v, want %v", tok.Cost, want)
	}
	code, msg := synthq(t, context.Background(), "stats", "--store", filepath.Join(out, "store"), "--json")
	var js struct {
		Tokens stages.TokenUse `json:"tokens"`
	}
	if code != 0 || json.Unmarshal([]byte(msg), &js) != nil || js.Tokens.Cost != tok.Cost {
		t.Errorf("stats --json: exit %d, tokens %+v: %s", code, js.Tokens, msg)
	}
}

// --dry-run renders every prompt, calls nothing, and reports requests,
// tokens (estimated, or counted by a tokenizer.json) and cost.
func TestDryRun(t *testing.T) {
	out := t.TempDir()
	llm, rr, args := fakeArgs(t, "tei", out)
	args = append(args, "--dry-run", "--price-input", "0.2", "--price-output", "0.6", "--queries-per-type", "2")
	code, msg := synthq(t, context.Background(), args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	if llm.Counter.Total() != 0 || rr.Counter.Total() != 0 {
		t.Fatalf("dry run sent %d LLM and %d teacher requests", llm.Counter.Total(), rr.Counter.Total())
	}
	for _, want := range []string{
		"── sample prompt: questions (passage kb001) ──", "── sample prompt: random", "[system]", "[user]",
		"40 × 6 types × 2 per type = 480 answers (0 stored",
		"to ask              480 answers in 240 requests",
		"estimate: 4 bytes a token", "≤ 24000 (--max-tokens 50", "cost                ≤ ",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, msg)
		}
	}
	// After a real run of the questions, a dry run counts only what is left.
	if code, msg := synthq(t, context.Background(), append(fakeArgsOnly(args), "--query-types", "questions", "--queries-per-type", "2")...); code != 0 {
		t.Fatalf("run: exit %d: %s", code, msg)
	}
	code, msg = synthq(t, context.Background(), append(args, "--tokenizer", filepath.Join("..", "..", "tokenize", "testdata", "llama3-mini.json"))...)
	if code != 0 || !strings.Contains(msg, "(80 stored") || !strings.Contains(msg, "400 answers in 200 requests") || !strings.Contains(msg, "llama3-mini.json") {
		t.Errorf("dry run after a partial run: exit %d:\n%s", code, msg)
	}
	// The dry run did not change the run's recorded settings.
	if cfg := storedConfig(t, out); len(cfg.QueryTypes) != 1 {
		t.Errorf("stored config query types %v: a dry run must not overwrite the run's config", cfg.QueryTypes)
	}
}

// fakeArgsOnly drops --dry-run and price flags from args.
func fakeArgsOnly(args []string) []string {
	var out []string
	for _, a := range args {
		if a != "--dry-run" {
			out = append(out, a)
		}
	}
	return out
}

// --teacher-input decides what the teacher reads; changing it re-scores,
// while changing a target threshold re-exports with no request at all.
func TestTeacherInputAndThresholdChanges(t *testing.T) {
	out := t.TempDir()
	llm, rr, args := fakeArgs(t, "vllm-score", out)
	var mu sync.Mutex
	var texts []string
	rr.Inspect = func(b []byte) {
		var req struct {
			Text2 []string `json:"text_2"`
		}
		json.Unmarshal(b, &req)
		mu.Lock()
		texts = append(texts, req.Text2...)
		mu.Unlock()
	}
	args = append(args, "--query-types", "questions,titles")
	if code, msg := synthq(t, context.Background(), append(args, "--teacher-input", "text")...); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	// Every text sent is exactly a passage's text (with "text") or its title,
	// a space and its text (with "title+text").
	bare, full := map[string]bool{}, map[string]bool{}
	for _, line := range strings.Split(readFile(t, corpus), "\n") {
		var p struct{ Title, Text string }
		if json.Unmarshal([]byte(line), &p) == nil && p.Title != "" {
			bare[p.Text], full[p.Title+" "+p.Text] = true, true
		}
	}
	for _, x := range texts {
		if !bare[x] {
			t.Fatalf("--teacher-input text sent %q, not a passage text", x)
		}
	}
	if m := manifestOf(t, out); m.TeacherScoreKind != "relevance" || !strings.Contains(m.TeacherScoreNote, "probabilities") {
		t.Errorf("vLLM /score manifest: kind %q note %q", m.TeacherScoreKind, m.TeacherScoreNote)
	}
	before := readFile(t, filepath.Join(out, "train.arrow"))
	llmN, rrN := llm.Counter.Total(), rr.Counter.Total()
	// A threshold and the normalisation change: nothing is sent, output changes.
	if code, msg := synthq(t, context.Background(), append(args, "--teacher-input", "text", "--min-top-percentile", "60", "--norm", "minmax")...); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	if llm.Counter.Total() != llmN || rr.Counter.Total() != rrN {
		t.Errorf("threshold change sent %d LLM and %d teacher requests, want none", llm.Counter.Total()-llmN, rr.Counter.Total()-rrN)
	}
	if readFile(t, filepath.Join(out, "train.arrow")) == before {
		t.Error("a stricter percentile and another normalisation left train.arrow unchanged")
	}
	// What the teacher reads changed: every pair is scored again, titles included.
	texts = nil
	if code, msg := synthq(t, context.Background(), append(args, "--teacher-input", "title+text")...); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	if llm.Counter.Total() != llmN || rr.Counter.Total() <= rrN {
		t.Errorf("teacher-input change: %d LLM requests (want 0), %d teacher requests (want > 0)", llm.Counter.Total()-llmN, rr.Counter.Total()-rrN)
	}
	for _, x := range texts {
		if !full[x] {
			t.Fatalf("--teacher-input title+text sent %q, not title and text", x)
		}
	}
	if len(texts) == 0 {
		t.Fatal("nothing re-scored")
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// --dedup near finds an exact copy (other case and punctuation) and a near
// copy (one word appended: Jaccard 0.97 over word 5-shingles); exact finds
// only the first; off asks about both. Neither duplicate gets queries, and
// a candidate list never holds a duplicate of its source passage.
func TestPassageDedup(t *testing.T) {
	dir := t.TempDir()
	b := readFile(t, corpus)
	lines := strings.SplitN(b, "\n", 3)
	var p1, p2 struct{ Title, Text string }
	json.Unmarshal([]byte(lines[0]), &p1)
	json.Unmarshal([]byte(lines[1]), &p2)
	exact, _ := json.Marshal(map[string]string{"_id": "kb900", "title": strings.ToUpper(p1.Title), "text": strings.ReplaceAll(p1.Text, ".", " .")})
	near, _ := json.Marshal(map[string]string{"_id": "kb901", "title": p2.Title, "text": p2.Text + " Updated"})
	c := filepath.Join(dir, "corpus.jsonl")
	os.WriteFile(c, []byte(b+string(exact)+"\n"+string(near)+"\n"), 0o644)
	for _, tc := range []struct {
		mode        string
		asked, dups int64
	}{{"near", 40, 2}, {"exact", 41, 1}, {"off", 42, 0}} {
		out := filepath.Join(dir, tc.mode)
		code, msg := synthq(t, context.Background(), "run", "--offline", "--corpus", c, "--out", out, "--quiet", "--min-candidates", "5", "--dedup", tc.mode)
		if code != 0 {
			t.Fatalf("--dedup %s: exit %d: %s", tc.mode, code, msg)
		}
		m := manifestOf(t, out)
		f := m.Stages["filter"].Counts
		if f["passages_asked"] != tc.asked || f["passages_duplicate"] != tc.dups || f["answers"] != tc.asked*6 {
			t.Errorf("--dedup %s: filter counts %v", tc.mode, f)
		}
		// Exact copies (equal normalised text) are removed from lists in
		// every mode; near copies only when --dedup near found them.
		if mc := m.Stages["mine"].Counts; mc["removed_duplicate_of_source"] == 0 {
			t.Errorf("--dedup %s: mine counts %v: copies of the source should be removed and counted", tc.mode, mc)
		}
		if m.DuplicatePassages != int(tc.dups) {
			t.Errorf("--dedup %s: manifest duplicate_passages %d, want %d", tc.mode, m.DuplicatePassages, tc.dups)
		}
		if tc.mode == "near" {
			_, rows := readArrow(t, filepath.Join(out, "train.arrow"))
			for _, r := range rows {
				for _, d := range r.DocIDs {
					if pair := r.Source + "/" + d; pair == "kb001/kb900" || pair == "kb002/kb901" {
						t.Errorf("a list of %s holds its duplicate %s", r.Source, d)
					}
				}
			}
		}
	}
}

// --holdout N keeps N passages out of generation and lists them in the
// manifest; --max-passages N asks about a seeded sample of N, and a larger
// N keeps the smaller sample (a resumed run reuses its answers).
func TestHoldoutAndSample(t *testing.T) {
	dir := t.TempDir()
	asked := func(out string, extra ...string) (map[string]bool, stages.Manifest) {
		args := append([]string{"run", "--offline", "--corpus", corpus, "--out", out, "--quiet", "--min-candidates", "5"}, extra...)
		if code, msg := synthq(t, context.Background(), args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", extra, code, msg)
		}
		st, err := pipeline.OpenStore(filepath.Join(out, "store"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		docs := map[string]bool{}
		st.Scan(pipeline.PrefixQuery, func(_ string, v []byte) error {
			var q dataset.Query
			json.Unmarshal(v, &q)
			docs[q.DocID] = true
			return nil
		})
		return docs, manifestOf(t, out)
	}
	docs, m := asked(filepath.Join(dir, "h"), "--holdout", "3")
	if len(m.Holdout) != 3 || len(docs) != 37 || m.Stages["filter"].Counts["passages_holdout"] != 3 {
		t.Fatalf("--holdout 3: manifest lists %v, %d passages asked, counts %v", m.Holdout, len(docs), m.Stages["filter"].Counts)
	}
	for _, h := range m.Holdout {
		if docs[h] {
			t.Errorf("held-out passage %s got queries", h)
		}
	}
	out := filepath.Join(dir, "s")
	small, m := asked(out, "--holdout", "3", "--max-passages", "10")
	if len(small) != 10 || m.Stages["filter"].Counts["passages_not_sampled"] != 27 {
		t.Fatalf("--max-passages 10: %d asked, counts %v", len(small), m.Stages["filter"].Counts)
	}
	large, _ := asked(out, "--holdout", "3", "--max-passages", "15")
	if len(large) != 15 {
		t.Fatalf("--max-passages 15: %d asked", len(large))
	}
	for d := range small {
		if !large[d] {
			t.Errorf("passage %s of the 10-sample is not in the 15-sample", d)
		}
	}
	again, _ := asked(filepath.Join(dir, "s2"), "--holdout", "3", "--max-passages", "10")
	if fmt.Sprint(again) != fmt.Sprint(small) {
		t.Error("the same seed drew another sample")
	}
	other, _ := asked(filepath.Join(dir, "s3"), "--holdout", "3", "--max-passages", "10", "--seed", "2")
	if fmt.Sprint(other) == fmt.Sprint(small) {
		t.Error("another seed drew the same sample")
	}
}
