package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/stages"
)

// longCorpus is the test corpus plus three long pages, each the text of
// fifteen passages (about 600 tokens: over a 512-token window), which BM25
// finds as candidates of many queries.
func longCorpus(t *testing.T) string {
	t.Helper()
	var texts []string
	for _, line := range strings.Split(strings.TrimSpace(readFile(t, corpus)), "\n") {
		var p struct{ Text string }
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatal(err)
		}
		texts = append(texts, p.Text)
	}
	var b strings.Builder
	b.WriteString(readFile(t, corpus))
	for i, id := range []string{"long1", "long2", "long3"} {
		text := strings.Join(texts[i*12:i*12+15], " ")
		line, _ := json.Marshal(map[string]string{"_id": id, "title": "Handbook part " + id, "text": text})
		b.Write(append(line, '\n'))
	}
	p := filepath.Join(t.TempDir(), "corpus.jsonl")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// withCorpus replaces the --corpus value of args.
func withCorpus(args []string, c string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if out[i] == "--corpus" {
			out[i+1] = c
		}
	}
	return out
}

type statsJSON struct {
	Failures []dataset.Failure `json:"failures"`
	Others   int               `json:"failures_other_settings"`
	Tokens   stages.TokenUse   `json:"tokens"`
}

func statsOf(t *testing.T, out string) statsJSON {
	t.Helper()
	code, msg := synthq(t, context.Background(), "stats", "--store", filepath.Join(out, "store"), "--json")
	var s statsJSON
	if code != 0 || json.Unmarshal([]byte(msg), &s) != nil {
		t.Fatalf("stats --json: exit %d: %s", code, msg)
	}
	return s
}

// Dense mining against llama-server --embeddings with its default -ub 512:
// one passage over it is answered HTTP 500 "input (N tokens) is too large
// to process". Without a cut on our side that passage alone fails (exit 3,
// listed by stats with the server's words) and every other passage is
// embedded, at once (no retries of the refusal); with the default
// --embed-max-tokens 512 it is cut and embedded, and the run exits 0.
func TestDenseLongPassageLlamaCpp(t *testing.T) {
	emb := fakes.NewEmbedder("llamacpp", "bge-base-en-v1.5-f16.gguf", 32)
	emb.PhysicalBatch = 512
	defer emb.Close()
	inputs := embedInputs(emb)
	c := longCorpus(t)
	run := func(out string, extra ...string) (int, string) {
		args := []string{"run", "--offline", "--corpus", c, "--out", out, "--quiet", "--min-candidates", "5",
			"--retriever", "dense", "--embed-url", emb.Server.URL, "--embed-model", "bge", "--roundtrip-k", "0", "--max-retries", "3"}
		return synthq(t, context.Background(), append(args, extra...)...)
	}
	out := filepath.Join(t.TempDir(), "nocut")
	code, msg := run(out, "--embed-max-tokens", "-1")
	if code != exitFailedItems || !strings.Contains(msg, "3 failed items") {
		t.Fatalf("no cut: exit %d, want 3 with the three long pages failed: %s", code, msg)
	}
	s := statsOf(t, out)
	for _, f := range s.Failures {
		if !strings.HasPrefix(f.Item, "passage long") || !strings.Contains(f.Reason, "too large to process") {
			t.Errorf("failure %+v: want a long page with llama.cpp's words", f)
		}
	}
	if got := len(inputs()); got < 43 {
		t.Errorf("%d texts embedded, want the 40 short passages and the queries", got)
	}
	m := manifestOf(t, out)
	if r, _ := m.Run["embed_retries"].(float64); r != 0 {
		t.Errorf("%v retries of a too-long answer", r)
	}

	out = filepath.Join(t.TempDir(), "cut")
	if code, msg := run(out); code != 0 {
		t.Fatalf("default window: exit %d: %s", code, msg)
	}
	if n := manifestOf(t, out).Stages["mine"].Counts["passage_embedding_failed"]; n != 0 {
		t.Errorf("%d passages failed with the window cut on our side", n)
	}
}

// A 512-token llama.cpp reranker (its /v1/rerank fails a whole list with
// HTTP 500 when one pair is over -ub) and candidates over the window: with
// the default --teacher-max-tokens 512 every passage is cut on our side and
// every query is labelled (exit 0); every document sent fits the window;
// and llama.cpp's raw logits are named so in the manifest.
func TestTeacherWindowLabelsEveryQuery(t *testing.T) {
	out := t.TempDir()
	llm, rr, args := fakeArgs(t, "cohere", out)
	_ = llm
	rr.Flavor, rr.MaxTokens = "llamacpp", 512
	var mu sync.Mutex
	over := 0
	rr.Inspect = func(b []byte) {
		var req struct {
			Query     string   `json:"query"`
			Documents []string `json:"documents"`
		}
		json.Unmarshal(b, &req)
		for _, d := range req.Documents {
			if fakes.Tokens(req.Query)+fakes.Tokens(d)+4 > 512 {
				mu.Lock()
				over++
				mu.Unlock()
			}
		}
	}
	args = append(withCorpus(args, longCorpus(t)), "--query-types", "questions,titles", "--max-retries", "2")
	code, msg := synthq(t, context.Background(), args...)
	if code != 0 {
		t.Fatalf("exit %d, want 0: %s", code, msg)
	}
	m := manifestOf(t, out)
	lab, mine := m.Stages["label"].Counts, m.Stages["mine"].Counts
	if lab["failed"] != 0 || lab["candidates_refused"] != 0 || lab["labelled"] != mine["kept"] || lab["labelled"] == 0 {
		t.Errorf("label counts %v (mine kept %d): want every kept query labelled", lab, mine["kept"])
	}
	if over != 0 {
		t.Errorf("%d documents sent over the window", over)
	}
	if m.TeacherScoreKind != "logits" || !strings.Contains(m.TeacherScoreNote, "llama.cpp") {
		t.Errorf("manifest score kind %q note %q: llama.cpp's scores are raw logits", m.TeacherScoreKind, m.TeacherScoreNote)
	}
	if m.Config.TeacherMaxTokens != 512 {
		t.Errorf("manifest config teacher_max_tokens %d", m.Config.TeacherMaxTokens)
	}
}

// Failures belong to the settings that produced them. Without a cut, the
// long pages' own queries fail at the 512-token teacher (their source is
// refused) while the other queries are scored around the long candidates;
// exit 3, stats lists them with llama.cpp's words, and a plain re-run keeps
// those words (never "failed on an earlier run"). With the window cut on our
// side (other teacher settings), every query is labelled: exit 0, and stats
// counts the old failures only as of other settings.
func TestFailuresScopedToSettings(t *testing.T) {
	out := t.TempDir()
	_, rr, args := fakeArgs(t, "cohere", out)
	rr.Flavor, rr.MaxTokens = "llamacpp", 512
	args = append(withCorpus(args, longCorpus(t)), "--query-types", "questions,titles", "--max-retries", "2",
		"--min-top-percentile", "0")
	nocut := append(args, "--teacher-max-tokens", "-1")
	code, msg := synthq(t, context.Background(), nocut...)
	if code != exitFailedItems {
		t.Fatalf("no cut: exit %d, want 3: %s", code, msg)
	}
	s := statsOf(t, out)
	if len(s.Failures) == 0 || s.Others != 0 {
		t.Fatalf("no cut: %d failures, %d of other settings", len(s.Failures), s.Others)
	}
	for _, f := range s.Failures {
		if f.Stage != "label" || !strings.HasPrefix(f.Item, "long") || !strings.Contains(f.Reason, "too large to process") {
			t.Errorf("failure %+v: want a long page's query with llama.cpp's words", f)
		}
	}
	if lab := manifestOf(t, out).Stages["label"].Counts; lab["candidates_refused"] == 0 || lab["labelled"] == 0 {
		t.Errorf("label counts %v: long candidates should be left out of other queries' lists, not fail them", lab)
	}
	first := len(s.Failures)
	if code, _ := synthq(t, context.Background(), nocut...); code != exitFailedItems {
		t.Fatalf("re-run: exit %d, want 3", code)
	}
	s = statsOf(t, out)
	for _, f := range s.Failures {
		if strings.Contains(f.Reason, "earlier run") || !strings.Contains(f.Reason, "too large to process") {
			t.Errorf("re-run overwrote the reason: %+v", f)
		}
	}
	if len(s.Failures) != first {
		t.Errorf("re-run: %d failures, want the same %d", len(s.Failures), first)
	}
	// Another configuration: the window cut on our side.
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("with the window: exit %d, want 0 (old failures are of other settings): %s", code, msg)
	}
	s = statsOf(t, out)
	if len(s.Failures) != 0 || s.Others != first {
		t.Errorf("with the window: stats lists %d failures and %d of other settings, want 0 and %d", len(s.Failures), s.Others, first)
	}
	if m := manifestOf(t, out); m.Failures != 0 {
		t.Errorf("manifest counts %d failures of other settings", m.Failures)
	}
}

// A teacher URL that points at a server that cannot rerank (llama-server
// without --reranking answers 501 to every query) stops the run at once
// with the server's message and a hint; nothing is recorded as failed, so
// once the URL is fixed the run completes with exit 0.
func TestTeacherCannotRerankStopsTheRun(t *testing.T) {
	out := t.TempDir()
	_, rr, args := fakeArgs(t, "cohere", out)
	rr.NoRerank = true
	args = append(args, "--query-types", "titles")
	code, msg := synthq(t, context.Background(), args...)
	if code != exitError || !strings.Contains(msg, "This server does not support reranking") ||
		!strings.Contains(msg, "hint:") || !strings.Contains(msg, "--teacher-url") {
		t.Fatalf("exit %d, want 1 with the server's words and a hint: %s", code, msg)
	}
	if n := rr.Counter.Total(); n > 4 {
		t.Errorf("%d teacher requests: the first refusals (at most the 4 in flight) should stop the run", n)
	}
	if s := statsOf(t, out); len(s.Failures) != 0 || s.Others != 0 {
		t.Errorf("stats lists %d failures (%d of other settings); a misconfiguration records none", len(s.Failures), s.Others)
	}
	rr.NoRerank = false
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("fixed server: exit %d: %s", code, msg)
	}
}

// llama.cpp honours n but its usage counts one choice: completion tokens are
// then counted per choice by the documented estimate, close to what a
// server counting every choice reports, and the answers are marked.
func TestCompletionTokensWithN(t *testing.T) {
	tokens := map[string]int64{}
	for _, mode := range []string{"", "one-usage"} {
		out := t.TempDir()
		llm, _, args := fakeArgs(t, "tei", out)
		llm.NMode = mode
		args = append(args, "--query-types", "questions,titles", "--queries-per-type", "3")
		if code, msg := synthq(t, context.Background(), args...); code != 0 {
			t.Fatalf("nmode %q: exit %d: %s", mode, code, msg)
		}
		m := manifestOf(t, out)
		tokens[mode] = m.Tokens.CompletionTokens
		est := m.Stages["generate"].Counts["answers_completion_estimated"]
		if (mode == "one-usage") != (est == 240) {
			t.Errorf("nmode %q: %d answers marked estimated", mode, est)
		}
		if s := statsOf(t, out); s.Tokens.CompletionTokens != m.Tokens.CompletionTokens {
			t.Errorf("nmode %q: stats %d completion tokens, manifest %d", mode, s.Tokens.CompletionTokens, m.Tokens.CompletionTokens)
		}
	}
	honest, fixed := float64(tokens[""]), float64(tokens["one-usage"])
	if fixed < 0.8*honest || fixed > 1.4*honest {
		t.Errorf("completion tokens %v with one-choice usage, %v counted per choice: want within -20%%..+40%%", fixed, honest)
	}
}

// What the answers show about the server is said once in the log and
// counted: prompts cut silently (Ollama above num_ctx reports the capped
// prompt_tokens), and a server answering as another model (llama.cpp serves
// its GGUF whatever --llm-model says). A URL missing /v1 is told from a
// missing model.
func TestServerWarnings(t *testing.T) {
	out := t.TempDir()
	llm, _, args := fakeArgs(t, "tei", out)
	llm.PromptCap, llm.ServedModel = 64, "Llama-3.1-8B-Instruct-Q4_K_M.gguf"
	args = append(args, "--query-types", "titles", "--llm-model", "qwen2.5:7b")
	code, msg := synthq(t, context.Background(), args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	if strings.Count(msg, "seems to cut prompts") != 1 || strings.Count(msg, `answered as "Llama-3.1-8B-Instruct-Q4_K_M.gguf"`) != 1 {
		t.Errorf("want each warning once: %s", msg)
	}
	g := manifestOf(t, out).Stages["generate"].Counts
	if g["answers_prompt_truncated"] != 40 || g["answers_model_mismatch"] != 40 {
		t.Errorf("generate counts %v", g)
	}

	out = t.TempDir()
	llm, _, args = fakeArgs(t, "tei", out)
	for i, a := range args {
		if a == llm.URL() {
			args[i] = llm.Server.URL // no /v1
		}
	}
	code, msg = synthq(t, context.Background(), append(args, "--query-types", "titles")...)
	if code != exitError || !strings.Contains(msg, "404 page not found") || !strings.Contains(msg, "/v1") || strings.Contains(msg, "not know this model") {
		t.Errorf("URL without /v1: exit %d: %s", code, msg)
	}
}

// The generate progress total is what this run asks (--max-passages), and
// after an interrupted run stats shows the tokens of the answers stored.
func TestProgressTotalAndInterruptedTokens(t *testing.T) {
	out := t.TempDir()
	_, _, args := fakeArgs(t, "tei", out)
	var plain []string
	for _, a := range args {
		if a != "--quiet" {
			plain = append(plain, a)
		}
	}
	code, msg := synthq(t, context.Background(), append(plain, "--max-passages", "10")...)
	if code != 0 || !strings.Contains(msg, "generate  60/60") {
		t.Errorf("exit %d; want the generate bar to end at 60/60 (10 passages × 6 types): %s", code, msg)
	}

	out = t.TempDir()
	llm, _, args := fakeArgs(t, "tei", out)
	ctx, cancel := context.WithCancel(context.Background())
	llm.OnServe = func(n int64) {
		if n == 30 {
			cancel()
		}
	}
	if code, msg := synthq(t, ctx, args...); code != exitInterrupted {
		t.Fatalf("exit %d, want 130: %s", code, msg)
	}
	cancel()
	if s := statsOf(t, out); s.Tokens.PromptTokens == 0 || s.Tokens.CompletionTokens == 0 {
		t.Errorf("stats after an interrupted run: tokens %+v, want those of the stored answers", s.Tokens)
	}
}

// tocCorpus is the test corpus plus two tables of contents (". . . . 394
// POLLINATION AND POLLEN TUBE GROWTH . . ."), whose short tokens make the
// 3-bytes-a-token estimate's cut ~20% over a 512-token window by the
// server's count, as SciFact passage 86217760 against llama-server.
func tocCorpus(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(readFile(t, corpus))
	for i, topic := range []string{"POLLINATION AND POLLEN TUBE GROWTH", "SEED DORMANCY AND GERMINATION"} {
		text := "Contents. " + strings.Repeat(". . . . . . "+strconv.Itoa(394+i*7)+" "+topic+" . . . . . . ", 50)
		line, _ := json.Marshal(map[string]string{"_id": "toc" + strconv.Itoa(i+1), "title": "Plant physiology, contents", "text": text})
		b.Write(append(line, '\n'))
	}
	p := filepath.Join(t.TempDir(), "corpus.jsonl")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tocRun runs synthq into out with extra flags against a 512-token
// llama.cpp reranker and embedder and tocCorpus, requires exit 0 and no
// failure, and returns mine's and label's counts and the two servers.
func tocRun(t *testing.T, out string, extra ...string) (mine, lab map[string]int64, rr *fakes.Reranker, emb *fakes.Embedder) {
	t.Helper()
	_, rr, args := fakeArgs(t, "cohere", out)
	rr.Flavor, rr.MaxTokens = "llamacpp", 512
	emb = fakes.NewEmbedder("llamacpp", "bge-base-en-v1.5-f16.gguf", 32)
	emb.PhysicalBatch = 512
	t.Cleanup(emb.Close)
	args = append(withCorpus(args, tocCorpus(t)), "--query-types", "questions,titles", "--max-retries", "2",
		"--retriever", "bm25,dense", "--embed-url", emb.Server.URL, "--embed-model", "bge", "--min-top-percentile", "0")
	code, msg := synthq(t, context.Background(), append(args, extra...)...)
	if code != 0 {
		t.Fatalf("exit %d, want 0: %s", code, msg)
	}
	if s := statsOf(t, out); len(s.Failures) != 0 {
		t.Errorf("failures %+v, want none", s.Failures)
	}
	m := manifestOf(t, out)
	return m.Stages["mine"].Counts, m.Stages["label"].Counts, rr, emb
}

// A 512-token llama.cpp embedder and reranker and passages of short tokens
// (issue 26): the estimate's cut is refused ("input (N tokens) is too large
// to process"); each refused text is cut again from the count the server
// states and sent alone, so the run exits 0 with no failed item, and stats
// shows how many inputs were cut again, for the embedder and the teacher.
func TestWindowCutAgainFromServerCount(t *testing.T) {
	out := t.TempDir()
	mine, lab, _, _ := tocRun(t, out)
	if mine["texts_cut_again"] < 2 || lab["candidates_cut_again"] < 1 {
		t.Errorf("mine texts_cut_again %d, label candidates_cut_again %d: want both tables of contents cut again", mine["texts_cut_again"], lab["candidates_cut_again"])
	}
	if lab["failed"] != 0 || lab["candidates_refused"] != 0 || mine["passage_embedding_failed"] != 0 {
		t.Errorf("label %v, mine %v: want nothing refused", lab, mine)
	}
	_, text := synthq(t, context.Background(), "stats", "--store", filepath.Join(out, "store"))
	if !strings.Contains(text, "texts_cut_again") || !strings.Contains(text, "candidates_cut_again") {
		t.Errorf("stats does not show the inputs cut again:\n%s", text)
	}
	t.Logf("mine %v\nlabel %v", mine, lab)
}

// The same servers with --teacher-tokenizer server --embed-tokenizer
// server: synthq counts with the servers' own /tokenize (llama-server's
// form, found by probing), so the first cut fits. No input is refused or
// cut again, nothing fails, and each table of contents is counted at the
// server. A teacher with no /tokenize (a hosted rerank API) stops the run
// at once with a hint naming the flag.
func TestWindowCountedByServer(t *testing.T) {
	mine, lab, rr, emb := tocRun(t, t.TempDir(), "--teacher-tokenizer", "server", "--embed-tokenizer", "server")
	if mine["texts_cut_again"] != 0 || lab["candidates_cut_again"] != 0 || lab["failed"] != 0 || mine["passage_embedding_failed"] != 0 {
		t.Errorf("mine %v, label %v: counted by the server, nothing may be refused or cut again", mine, lab)
	}
	if rr.Tokenized.Load() == 0 || emb.Tokenized.Load() == 0 {
		t.Errorf("/tokenize asked %d times at the teacher, %d at the embedder", rr.Tokenized.Load(), emb.Tokenized.Load())
	}
	t.Logf("tokenize requests: teacher %d, embedder %d", rr.Tokenized.Load(), emb.Tokenized.Load())

	_, hosted, args := fakeArgs(t, "cohere", t.TempDir())
	hosted.MaxTokens = 512
	code, msg := synthq(t, context.Background(), append(withCorpus(args, tocCorpus(t)), "--teacher-tokenizer", "server")...)
	if code != exitError || !strings.Contains(msg, "--teacher-tokenizer server") || !strings.Contains(msg, "/tokenize") {
		t.Errorf("a teacher without /tokenize: exit %d, want %d with a hint naming the flag: %s", code, exitError, msg)
	}
	t.Logf("no /tokenize: %s", msg)
}
