package main

// The real-server tier: llama.cpp's llama-server processes on loopback,
// serving tiny random-weight models made at test time by internal/realserver
// (seeded, cached by the maker's version and seed), and synthq run end to end
// against them. The models write word salad and score at random, so the runs
// keep every query (--roundtrip-k 0, --require-source-top1=false,
// --min-top-percentile 0): what is tested is the protocol, not the quality.
//
// The tests skip with a message where no llama-server is found
// ($SYNTHQ_LLAMA_SERVER, else llama-server on PATH) and fail instead when
// SYNTHQ_REAL=1, as in CI, where .ci/llama-server.sh builds llama-server once
// and caches it outside the clone. Run them alone with
//
//	eval "$(bash .ci/llama-server.sh)" && go test ./cmd/synthq -run Real -v

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/synthq/synthq/internal/realserver"
	"github.com/synthq/synthq/tokenize"
)

// realKit is what the real-server tests share: the binary and the models.
type realKit struct {
	bin, vocab string
	chat       string // llama, Llama 3 vocab and chat template, n_ctx_train 4096
	embed      string // BERT, mean pooling, n_ctx_train 512
	rerank     string // BERT + classification head, rank pooling, n_ctx_train 2048
}

var (
	kitOnce sync.Once
	kit     *realKit
	kitErr  error
)

// needReal returns the kit, skipping the test where there is no
// llama-server, or failing it when SYNTHQ_REAL=1.
func needReal(t *testing.T) *realKit {
	t.Helper()
	if testing.Short() {
		t.Skip("real-server tests start llama-server processes; skipped with -short")
	}
	kitOnce.Do(func() {
		k := &realKit{}
		if k.bin, kitErr = realserver.Binary(); kitErr != nil {
			return
		}
		if k.vocab, kitErr = realserver.VocabDir(k.bin); kitErr != nil {
			return
		}
		cache := realserver.CacheDir()
		for _, m := range []struct {
			dst  *string
			kind realserver.Kind
		}{{&k.chat, realserver.Chat}, {&k.embed, realserver.Embed}, {&k.rerank, realserver.Rerank}} {
			if *m.dst, kitErr = realserver.Ensure(cache, k.vocab, realserver.Spec{Kind: m.kind, Seed: 13}); kitErr != nil {
				kitErr = fmt.Errorf("make %s model: %w", m.kind, kitErr)
				return
			}
		}
		kit = k
	})
	if kitErr != nil {
		if os.Getenv("SYNTHQ_REAL") == "1" {
			t.Fatalf("SYNTHQ_REAL=1 but the real-server tier cannot run: %v", kitErr)
		}
		t.Skipf("real-server tests skipped: %v", kitErr)
	}
	return kit
}

// Model names the servers are started with (--alias) and synthq sends.
const (
	realChatModel   = "synthq-test-chat"
	realEmbedModel  = "synthq-test-embed"
	realRerankModel = "synthq-test-rerank"
)

func (k *realKit) chatServer(t *testing.T, args ...string) *realserver.Server {
	return realserver.Start(context.Background(), t, k.bin, k.chat, append([]string{"--alias", realChatModel}, args...)...)
}

func (k *realKit) embedServer(t *testing.T, args ...string) *realserver.Server {
	return realserver.Start(context.Background(), t, k.bin, k.embed,
		append([]string{"--alias", realEmbedModel, "--embeddings", "--pooling", "mean"}, args...)...)
}

func (k *realKit) rerankServer(t *testing.T, args ...string) *realserver.Server {
	return realserver.Start(context.Background(), t, k.bin, k.rerank,
		append([]string{"--alias", realRerankModel, "--reranking"}, args...)...)
}

func counter(t *testing.T, s *realserver.Server) *realserver.Counter {
	t.Helper()
	c, err := realserver.NewCounter(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// realCorpus writes the first n passages of the test corpus, each passage's
// text repeated rep times (rep > 1 makes long passages).
func realCorpus(t *testing.T, n, rep int) string {
	t.Helper()
	b, err := os.ReadFile(corpus)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	for i := 0; i < n && sc.Scan(); i++ {
		var p map[string]string
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		p["text"] = strings.TrimSpace(strings.Repeat(p["text"]+" ", rep))
		line, _ := json.Marshal(p)
		out.Write(append(line, '\n'))
	}
	path := filepath.Join(t.TempDir(), "corpus.jsonl")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// keepAll are the flags that keep every query of a random model.
var keepAll = []string{"--roundtrip-k", "0", "--require-source-top1=false", "--min-top-percentile", "0"}

// realRunArgs is a run over corp against the three servers' URLs.
func realRunArgs(corp, out, llmURL, teacherURL string, extra ...string) []string {
	args := []string{"run", "--corpus", corp, "--out", out, "--quiet",
		"--llm-url", llmURL + "/v1", "--llm-model", realChatModel,
		"--teacher-url", teacherURL, "--teacher-api", "cohere", "--teacher-model", realRerankModel,
		"--query-types", "questions,keywords", "--max-tokens", "16",
		"--min-candidates", "3", "--concurrency", "4", "--dev-fraction", "0.3", "--seed", "7"}
	return append(append(args, keepAll...), extra...)
}

// The main flow against real servers: run with bm25,dense (chat, embeddings
// and reranker servers), exports written, every server asked.
func TestRealRunBM25Dense(t *testing.T) {
	k := needReal(t)
	chat, emb, rr := k.chatServer(t, "-np", "4"), k.embedServer(t), k.rerankServer(t)
	cc, ec, rc := counter(t, chat), counter(t, emb), counter(t, rr)
	out := t.TempDir()
	args := realRunArgs(realCorpus(t, 8, 1), out, cc.URL, rc.URL,
		"--retriever", "bm25,dense", "--embed-url", ec.URL+"/v1", "--embed-model", realEmbedModel)
	code, msg := synthq(t, context.Background(), args...)
	t.Logf("chat: %s\nembed: %s\nrerank: %s", cc, ec, rc)
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, msg)
	}
	train, dev := realOutput(t, out)
	m := manifestOf(t, out)
	t.Logf("%d train + %d dev lists; filter %v", len(train), len(dev), m.Stages["filter"].Counts)
	if len(train) == 0 || len(dev) == 0 || len(train)+len(dev) > 16 {
		t.Errorf("%d train + %d dev lists from 16 queries", len(train), len(dev))
	}
	if got := cc.Requests("POST /v1/chat/completions"); got < 16 {
		t.Errorf("%d chat requests reached llama-server, want at least 16", got)
	}
	if ec.Answers("/v1/embeddings", 200) == 0 || rc.Answers("/v1/rerank", 200) == 0 {
		t.Errorf("embeddings or rerank never answered 200: embed %s; rerank %s", ec, rc)
	}
	if m.Tokens.PromptTokens == 0 || m.Tokens.CompletionTokens == 0 {
		t.Errorf("manifest tokens %+v: want the server's usage", m.Tokens)
	}
	// llama.cpp's /v1/rerank returns raw logits in relevance_score, which
	// the client tells from the values (some fall outside [0, 1]).
	if m.TeacherScoreKind != "logits" {
		t.Errorf("teacher score kind %q, want logits (llama.cpp's rerank answers raw logits)", m.TeacherScoreKind)
	}
}

// Long passages (about 700 tokens with the query) against a reranker with a
// window that takes them (-ub 2048) and one with llama-server's default
// 512-token physical batch, which refuses any pair longer than that with
// HTTP 500 (see llamacpp-answers.md): synthq must cut candidates to the
// teacher's window on its side and finish.
func TestRealRerankWindow(t *testing.T) {
	k := needReal(t)
	chat := k.chatServer(t, "-np", "4")
	// Dense retrieval gives every query all passages as candidates (BM25
	// finds few for word salad); the rerank model (n_ctx_train 2048) with
	// mean pooling embeds the long passages.
	emb := realserver.Start(context.Background(), t, k.bin, k.rerank, "--alias", realEmbedModel,
		"--embeddings", "--pooling", "mean", "-c", "2048", "-ub", "2048", "-b", "2048")
	corp := realCorpus(t, 6, 16)
	for _, tc := range []struct {
		name string
		args []string
	}{{"ub2048", []string{"-c", "2048", "-ub", "2048", "-b", "2048"}}, {"ub512", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			rr := k.rerankServer(t, tc.args...)
			rc := counter(t, rr)
			out := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			start := time.Now()
			code, msg := synthq(t, ctx, realRunArgs(corp, out, chat.URL, rc.URL, "--max-retries", "2",
				"--retriever", "dense", "--embed-url", emb.URL+"/v1", "--embed-model", realEmbedModel)...)
			t.Logf("exit %d after %s; rerank: %s; %s", code, time.Since(start).Round(time.Millisecond), rc, clip(msg, 1500))
			if code == exitFailedItems {
				_, stats := synthq(t, context.Background(), "stats", "--store", filepath.Join(out, "store"))
				t.Logf("stats: %s", clip(stats, 3000))
			}
			if code != 0 {
				t.Fatalf("run: exit %d: %s", code, msg)
			}
			train, dev := realOutput(t, out)
			m := manifestOf(t, out)
			t.Logf("stages: %v", m.Stages)
			if len(train)+len(dev) == 0 || rc.Answers("/v1/rerank", 200) == 0 {
				t.Errorf("%d lists, %d rerank answers: the teacher was never asked", len(train)+len(dev), rc.Answers("/v1/rerank", 200))
			}
		})
	}
}

// Passages of short tokens against llama-server's 512-token embedder and
// reranker (default -ub 512; issue 26): the table of contents of SciFact
// passage 86217760 (". . . . . . 394 POLLINATION AND POLLEN TUBE GROWTH . .
// .") cut by the 3-bytes-a-token estimate is ~20% over the window by
// llama.cpp's count, which refuses it with "input (N tokens) is too large to
// process". Each refused text, and each refused (query, passage) pair, is
// cut again from the count the server states: exit 0, no failed item, and
// stats shows the inputs cut again.
func TestRealWindowCutAgain(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		// The estimate's cut is refused, then cut again from the stated count.
		{"estimate", nil},
		// Counted at the servers' own /tokenize: the first cut fits.
		{"server-tokenizer", []string{"--teacher-tokenizer", "server", "--embed-tokenizer", "server"}},
	} {
		t.Run(tc.name, func(t *testing.T) { realWindowRun(t, tc.extra) })
	}
}

func realWindowRun(t *testing.T, extra []string) {
	k := needReal(t)
	chat, emb, rr := k.chatServer(t, "-np", "4"), k.embedServer(t), k.rerankServer(t)
	ec, rc := counter(t, emb), counter(t, rr)
	corp := realCorpus(t, 6, 1)
	b, err := os.ReadFile(corp)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	sb.Write(b)
	for i, topic := range []string{"POLLINATION AND POLLEN TUBE GROWTH", "SEED DORMANCY AND GERMINATION"} {
		// Dot leaders as a scanned table of contents has them: a token a
		// dot, ~2.6 bytes a token over the whole text.
		text := strings.Repeat(topic+" "+strings.Repeat(". ", 30)+strconv.Itoa(394+7*i)+" ", 30)
		line, _ := json.Marshal(map[string]string{"_id": "toc" + strconv.Itoa(i+1), "title": "Contents", "text": text})
		sb.Write(append(line, '\n'))
	}
	if err := os.WriteFile(corp, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	args := append(realRunArgs(corp, out, chat.URL, rc.URL, "--max-retries", "2",
		"--retriever", "bm25,dense", "--embed-url", ec.URL+"/v1", "--embed-model", realEmbedModel), extra...)
	code, msg := synthq(t, ctx, args...)
	t.Logf("exit %d; embed: %s; rerank: %s", code, ec, rc)
	_, stats := synthq(t, context.Background(), "stats", "--store", filepath.Join(out, "store"))
	t.Logf("stats: %s", clip(stats, 3000))
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, msg)
	}
	if !strings.Contains(stats, "failures  0") {
		t.Errorf("stats lists failures")
	}
	m := manifestOf(t, out)
	mine, lab := m.Stages["mine"].Counts, m.Stages["label"].Counts
	if extra != nil {
		// Exact counts: nothing refused, nothing cut again.
		if mine["texts_cut_again"] != 0 || lab["candidates_cut_again"] != 0 || ec.Answers("/v1/embeddings", 500) != 0 {
			t.Errorf("counted at the servers: mine texts_cut_again %d, label candidates_cut_again %d, embedder refusals %d; want none",
				mine["texts_cut_again"], lab["candidates_cut_again"], ec.Answers("/v1/embeddings", 500))
		}
		if ec.Answers("/tokenize", 200) == 0 || rc.Answers("/tokenize", 200) == 0 {
			t.Errorf("/tokenize never asked: embed %s, rerank %s", ec, rc)
		}
		return
	}
	if mine["texts_cut_again"] < 2 || lab["candidates_cut_again"] < 1 {
		t.Errorf("mine texts_cut_again %d, label candidates_cut_again %d: want the tables of contents cut again for both servers",
			mine["texts_cut_again"], lab["candidates_cut_again"])
	}
	if !strings.Contains(stats, "texts_cut_again") || !strings.Contains(stats, "candidates_cut_again") {
		t.Errorf("stats does not show the inputs cut again")
	}
	if ec.Answers("/v1/embeddings", 500) == 0 {
		t.Errorf("the embedder never refused an input: the test shows nothing (%s)", ec)
	}
}

// eval --retriever dense against a real embeddings server.
func TestRealEvalDense(t *testing.T) {
	k := needReal(t)
	emb := k.embedServer(t)
	queries, qrels := smallBEIR(t)
	code, msg := synthq(t, context.Background(), "eval", "--corpus", corpus, "--queries", queries, "--qrels", qrels,
		"--json", "--retriever", "dense", "--embed-url", emb.URL+"/v1", "--embed-model", realEmbedModel)
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, msg)
	}
	var m map[string]float64
	if err := json.Unmarshal([]byte(msg), &m); err != nil {
		t.Fatalf("--json output %q: %v", msg, err)
	}
	if m["queries"] != 3 || m["recall@1000"] != 1 {
		t.Errorf("eval %s: want 3 judged queries and recall@1000 = 1 (40 passages)", msg)
	}
}

// --queries-per-type 3: one request with n = 3 where llama-server takes n, and
// one request per sample where it refuses it (-np 1); either way every slot
// is answered.
func TestRealQueriesPerType(t *testing.T) {
	k := needReal(t)
	completion := map[string]int64{}
	for _, tc := range []struct {
		name string
		np   string
	}{{"np4", "4"}, {"np1", "1"}} {
		t.Run(tc.name, func(t *testing.T) {
			chat, rr := k.chatServer(t, "-np", tc.np), k.rerankServer(t)
			cc := counter(t, chat)
			out := t.TempDir()
			args := realRunArgs(realCorpus(t, 4, 1), out, cc.URL, rr.URL, "--queries-per-type", "3")
			code, msg := synthq(t, context.Background(), args...)
			t.Logf("chat: %s", cc)
			if code != 0 {
				t.Fatalf("run: exit %d: %s", code, msg)
			}
			m := manifestOf(t, out)
			g := m.Stages["generate"].Counts
			t.Logf("generate counters: %v", g)
			if g["answers"] != 24 {
				t.Errorf("%d answers, want 4 passages × 2 types × 3 = 24", g["answers"])
			}
			reqs := int64(cc.Requests("POST /v1/chat/completions"))
			switch {
			case g["n_unsupported"] > 0:
				// refused n: one request per sample after the first refusal.
				if reqs < 24 {
					t.Errorf("n refused but only %d requests for 24 answers", reqs)
				}
			default:
				if reqs != 8 {
					t.Errorf("n honoured: %d requests, want 8 (one per passage and type)", reqs)
				}
			}
			completion[tc.name] = g["completion_tokens"]
		})
	}
	// Word salad runs to --max-tokens 16 in (nearly) every choice, so both
	// runs wrote about 24 × 16 tokens. llama-server's usage.completion_tokens
	// with n > 1 counts one choice only (see llamacpp-answers.md).
	t.Run("usage with n", func(t *testing.T) {
		t.Logf("completion tokens: %v", completion)
		if completion["np4"] < completion["np1"]*9/10 {
			t.Errorf("with n honoured the manifest counts %d completion tokens, one request per sample %d: choices beyond the first are not counted",
				completion["np4"], completion["np1"])
		}
	})
}

// --llm-api-key / --teacher-api-key / --embed-api-key against servers started
// with --api-key: the right key works; no key stops the run at once with
// llama-server's 401 and a hint.
func TestRealAPIKey(t *testing.T) {
	k := needReal(t)
	const key = "sk-synthq-test"
	chat, emb, rr := k.chatServer(t, "--api-key", key), k.embedServer(t, "--api-key", key), k.rerankServer(t, "--api-key", key)
	corp := realCorpus(t, 3, 1)
	base := func(out string) []string {
		return realRunArgs(corp, out, chat.URL, rr.URL, "--retriever", "bm25,dense",
			"--embed-url", emb.URL+"/v1", "--embed-model", realEmbedModel)
	}
	code, msg := synthq(t, context.Background(), append(base(t.TempDir()),
		"--llm-api-key", key, "--teacher-api-key", key, "--embed-api-key", key)...)
	if code != 0 {
		t.Fatalf("with keys: exit %d: %s", code, msg)
	}
	start := time.Now()
	code, msg = synthq(t, context.Background(), base(t.TempDir())...)
	if code != exitError || !strings.Contains(msg, "401") || !strings.Contains(strings.ToLower(msg), "api key") {
		t.Errorf("without keys: exit %d, want %d naming the 401 and the API key: %s", code, exitError, msg)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("without keys the run took %s to stop; a 401 is a misconfiguration, not worth retrying", d)
	}
}

// A small context (-c 256, one slot): prompts that do not fit are refused by
// the server; the run must not hang, must record the items with the server's
// words, and exit 3 (or cut the passages to fit and exit 0).
func TestRealSmallContext(t *testing.T) {
	k := needReal(t)
	chat, rr := k.chatServer(t, "-c", "256", "-np", "1"), k.rerankServer(t)
	out := t.TempDir()
	args := realRunArgs(realCorpus(t, 3, 4), out, chat.URL, rr.URL, "--max-retries", "2")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code, msg := synthq(t, ctx, args...)
	t.Logf("run: exit %d: %s", code, msg)
	switch code {
	case 0:
	case exitFailedItems:
		code, stats := synthq(t, context.Background(), "stats", "--store", filepath.Join(out, "store"))
		t.Logf("stats: exit %d: %s", code, stats)
		if !strings.Contains(stats, "context") {
			t.Errorf("stats does not give the server's reason (exceeds the context): %s", stats)
		}
	default:
		t.Errorf("run: exit %d, want 0 (passages cut to fit) or 3 (items failed with the server's words): %s", code, msg)
	}
}

// The chat server is killed mid-run and restarted on the same port a few
// seconds later: the run waits for it and finishes with every answer.
func TestRealServerRestart(t *testing.T) {
	k := needReal(t)
	chat, rr := k.chatServer(t, "-np", "2"), k.rerankServer(t)
	out := t.TempDir()
	args := realRunArgs(realCorpus(t, 12, 1), out, chat.URL, rr.URL, "--max-tokens", "48")
	done, result := synthqInBackground(t, args...)
	time.Sleep(1500 * time.Millisecond)
	chat.Kill()
	t.Log("chat server killed")
	time.Sleep(4 * time.Second)
	select {
	case <-done:
		code, msg := result()
		t.Fatalf("the run ended while the server was down: exit %d: %s", code, msg)
	default:
	}
	mark := len(chat.Log())
	if err := chat.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Log("chat server restarted")
	<-done
	code, msg := result()
	if !strings.Contains(chat.Log()[mark:], "launch_slot_") {
		t.Errorf("the restarted server got no request: the kill did not land mid-run")
	}
	if code != 0 {
		t.Fatalf("run across a restart: exit %d: %s", code, msg)
	}
	if g := manifestOf(t, out).Stages["generate"].Counts; g["answers"]+g["cached"] != 24 || g["failed"] != 0 {
		t.Errorf("generate counters %v: want 24 answers and no failure", g)
	}
}

// An outage longer than the retries last (--max-retries 2: about a second
// of backoff): the run waits for the server to come back (up to the default
// outage limit) instead of failing the items in flight.
func TestRealServerOutage(t *testing.T) {
	k := needReal(t)
	chat, rr := k.chatServer(t, "-np", "2"), k.rerankServer(t)
	out := t.TempDir()
	args := realRunArgs(realCorpus(t, 12, 1), out, chat.URL, rr.URL, "--max-tokens", "48", "--max-retries", "2")
	done, result := synthqInBackground(t, args...)
	time.Sleep(1500 * time.Millisecond)
	chat.Kill()
	time.Sleep(15 * time.Second)
	if err := chat.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	code, msg := result()
	g := manifestOf(t, out).Stages["generate"].Counts
	t.Logf("exit %d; generate counters %v; %s", code, g, clip(msg, 1500))
	if code == exitFailedItems {
		_, stats := synthq(t, context.Background(), "stats", "--store", filepath.Join(out, "store"))
		if i := strings.Index(stats, "failures"); i >= 0 {
			t.Logf("stats: %s", clip(stats[i:], 1200))
		}
	}
	if code != 0 || g["failed"] != 0 {
		t.Errorf("run across a 15 s outage: exit %d, %d failed items, want 0 and 0: %s", code, g["failed"], msg)
	}
}

// SIGINT to a real synthq process mid-run: it stops within a grace period
// with exit 130, and the same command resumes and finishes, re-asking little.
func TestRealSIGINTResume(t *testing.T) {
	k := needReal(t)
	bin := buildBinary(t)
	chat, rr := k.chatServer(t, "-np", "2"), k.rerankServer(t)
	cc := counter(t, chat)
	out := t.TempDir()
	args := realRunArgs(realCorpus(t, 12, 1), out, cc.URL, rr.URL, "--max-tokens", "48")
	cmd, wait, stderr := startSynthq(t, bin, args...)
	time.Sleep(2 * time.Second)
	before := cc.Requests("POST /v1/chat/completions")
	cmd.Process.Signal(syscall.SIGINT)
	sent := time.Now()
	select {
	case <-wait:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-wait
		t.Fatalf("synthq did not stop within 15 s of SIGINT: %s", stderr.String())
	}
	t.Logf("stopped %s after SIGINT with exit %d (%d chat requests by then): %s",
		time.Since(sent).Round(time.Millisecond), cmd.ProcessState.ExitCode(), before, strings.TrimSpace(stderr.String()))
	if c := cmd.ProcessState.ExitCode(); c != exitInterrupted && c != 0 {
		t.Errorf("exit %d after SIGINT, want %d", c, exitInterrupted)
	}
	first := cc.Requests("POST /v1/chat/completions")
	b, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, b)
	}
	total := cc.Requests("POST /v1/chat/completions")
	t.Logf("chat requests: %d before the resume, %d after (24 answers wanted)", first, total)
	if total > 24+4 {
		t.Errorf("%d chat requests for 24 answers: the resume re-asked more than was in flight", total)
	}
	realOutput(t, out)
	t.Run("grace", func(t *testing.T) {
		if total != 24 {
			t.Errorf("%d chat requests for 24 answers: %d in flight at SIGINT were asked again", total, total-24)
		}
	})
}

// --dry-run --tokenizer counts prompt tokens with a tokenizer.json made from
// the same Llama 3 vocab the server uses: per message, the count equals the
// server's own /tokenize; in total, the dry run's figure (with the chat
// template overhead estimate) is close to what the server reports as
// usage.prompt_tokens for the same requests.
func TestRealDryRunTokenizer(t *testing.T) {
	k := needReal(t)
	tokJSON := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := realserver.WriteLlama3TokenizerJSON(k.vocab, tokJSON); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenize.Load(tokJSON)
	if err != nil {
		t.Fatal(err)
	}
	chat, rr := k.chatServer(t), k.rerankServer(t)
	corp := realCorpus(t, 3, 1)
	out := t.TempDir()
	args := realRunArgs(corp, out, chat.URL, rr.URL, "--query-types", "questions")
	code, msg := synthq(t, context.Background(), append(args, "--dry-run", "--tokenizer", tokJSON)...)
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, msg)
	}
	var dry int64
	for _, l := range strings.Split(msg, "\n") {
		if strings.HasPrefix(l, "prompt tokens") {
			fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(l, "prompt tokens")), &dry)
		}
	}
	if dry == 0 {
		t.Fatalf("no prompt token count in the dry run:\n%s", msg)
	}
	// The sample prompt, message by message, against the server's /tokenize.
	rep, err := sampleMessages(msg)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range rep {
		got := tok.Count(m)
		want := serverTokens(t, chat.URL, m)
		if got != want {
			t.Errorf("message %d: synthq's tokenizer counts %d tokens, llama-server %d:\n%s", i, got, want, m)
		}
	}
	code, msg = synthq(t, context.Background(), args...)
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, msg)
	}
	served := manifestOf(t, out).Tokens.PromptTokens
	t.Logf("prompt tokens: dry run %d (%s), llama-server usage %d", dry, tok.Name(), served)
	if dry != served {
		t.Errorf("dry run %d prompt tokens, the server counted %d for the same 3 requests (chat template overhead estimate off?)", dry, served)
	}
}

// realOutput reads the exported lists as checkOutput does, without its
// checks that only hold for a real teacher (source passage first).
func realOutput(t *testing.T, out string) (train, dev []row) {
	t.Helper()
	for _, split := range []string{"train", "dev"} {
		_, rows := readArrow(t, filepath.Join(out, split+".arrow"))
		if pq := readParquet(t, filepath.Join(out, split+".parquet")); len(pq) != len(rows) {
			t.Errorf("%s.parquet has %d rows, %s.arrow %d", split, len(pq), split, len(rows))
		}
		for _, r := range rows {
			n := len(r.DocIDs)
			if n < 3 || len(r.Texts) != n || len(r.Scores) != n || len(r.Raw) != n || !slices.Contains(r.DocIDs, r.Source) {
				t.Errorf("%s row %s: %d passages (source %s in %v), %d scores", split, r.QID, n, r.Source, r.DocIDs, len(r.Scores))
			}
		}
		if split == "train" {
			train = rows
		} else {
			dev = rows
		}
	}
	return train, dev
}

// sampleMessages reads the first sample prompt's message contents from a dry
// run's output ("[role]" lines start each message).
func sampleMessages(out string) ([]string, error) {
	var msgs []string
	var cur *strings.Builder
	started := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "── sample prompt"):
			if started {
				return finish(msgs, cur), nil
			}
			started = true
		case !started:
		case l == "[system]" || l == "[user]" || l == "[assistant]":
			msgs = finish(msgs, cur)
			cur = &strings.Builder{}
		case cur != nil && (strings.HasPrefix(l, "passages  ") || strings.HasPrefix(l, "── ")):
			return finish(msgs, cur), nil
		case cur != nil:
			if cur.Len() > 0 {
				cur.WriteByte('\n')
			}
			cur.WriteString(l)
		}
	}
	if len(msgs) == 0 && cur == nil {
		return nil, fmt.Errorf("no sample prompt in:\n%s", out)
	}
	return finish(msgs, cur), nil
}

func finish(msgs []string, cur *strings.Builder) []string {
	if cur == nil {
		return msgs
	}
	return append(msgs, strings.TrimRight(cur.String(), "\n"))
}

// serverTokens is llama-server's own token count of text (no special tokens).
func serverTokens(t *testing.T, url, text string) int {
	t.Helper()
	status, b := post(t, url+"/tokenize", "", map[string]any{"content": text, "add_special": false})
	if status != 200 {
		t.Fatalf("/tokenize: HTTP %d: %s", status, b)
	}
	var r struct{ Tokens []int }
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("/tokenize: %v: %s", err, b)
	}
	return len(r.Tokens)
}

func post(t *testing.T, url, key string, body any) (int, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, rb
}

// synthqInBackground runs synthq with args in a goroutine; once done is
// closed, result returns its exit status and output.
func synthqInBackground(t *testing.T, args ...string) (done <-chan struct{}, result func() (int, string)) {
	ch := make(chan struct{})
	var code int
	var msg string
	go func() {
		defer close(ch)
		code, msg = synthq(t, context.Background(), args...)
	}()
	return ch, func() (int, string) { return code, msg }
}

// synthq adapt against llama-server's embeddings (a random-weight BERT, so
// any gain is noise): the offline flow mines with bm25,dense through the
// server, adapt trains on the lists without embedding what the run stored,
// and eval --adapter applies it.
func TestRealAdapt(t *testing.T) {
	k := needReal(t)
	emb := k.embedServer(t)
	ec := counter(t, emb)
	embed := []string{"--embed-url", ec.URL + "/v1", "--embed-model", realEmbedModel}
	out := t.TempDir()
	if code, msg := synthq(t, context.Background(), append([]string{"run", "--offline", "--corpus", corpus, "--out", out, "--quiet",
		"--min-candidates", "5", "--retriever", "bm25,dense"}, embed...)...); code != 0 {
		t.Fatalf("run: exit %d: %s", code, msg)
	}
	before := ec.Requests("POST /v1/embeddings")
	adir := filepath.Join(out, "adapter")
	if code, msg := synthq(t, context.Background(), "adapt", "--store", filepath.Join(out, "store"), "--out", adir, "--epochs", "5"); code != 0 {
		t.Fatalf("adapt: exit %d: %s", code, msg)
	} else {
		t.Log(msg)
	}
	if n := ec.Requests("POST /v1/embeddings") - before; n != 0 {
		t.Errorf("adapt sent %d embeddings requests for vectors the run stored", n)
	}
	queries, qrels := smallBEIR(t)
	ev := append([]string{"--corpus", corpus, "--queries", queries, "--qrels", qrels, "--retriever", "dense"}, embed...)
	base := evalJSON(t, ev...)
	with := evalJSON(t, append(ev, "--adapter", filepath.Join(adir, "adapter.safetensors"))...)
	if with["queries"] != 3 || with["recall@1000"] != 1 {
		t.Errorf("eval --adapter %v: want 3 judged queries and recall@1000 = 1", with)
	}
	t.Logf("testdata: nDCG@10 %.4f without, %.4f with the adapter (random weights: noise)", base["ndcg@10"], with["ndcg@10"])
}
