package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/llm"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/teacher"
)

const benchModel = "meta-llama/Llama-3.1-8B-Instruct"

// synthCorpus writes n synthetic passages (Zipf-distributed words from a
// 5,000-word vocabulary, 60–120 words each; seeded) as BEIR JSONL.
func synthCorpus(tb testing.TB, n int) string {
	tb.Helper()
	r := rand.New(rand.NewPCG(42, 7))
	z := rand.NewZipf(r, 1.1, 2, 4999)
	vocab := make([]string, 5000)
	for i := range vocab {
		b := make([]byte, 3+r.IntN(7))
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		vocab[i] = string(b)
	}
	path := filepath.Join(tb.TempDir(), "corpus.jsonl")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	enc := json.NewEncoder(f)
	for i := 0; i < n; i++ {
		ws := make([]string, 60+r.IntN(61))
		for j := range ws {
			ws[j] = vocab[z.Uint64()]
		}
		enc.Encode(map[string]string{"_id": fmt.Sprintf("p%07d", i), "title": ws[0] + " " + ws[1], "text": strings.Join(ws, " ")})
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

func benchEnv(tb testing.TB, corpus string, cfg *pipeline.Config) *pipeline.Env {
	tb.Helper()
	cfg.Corpus, cfg.Out = corpus, tb.TempDir()
	cfg.EnsureDefaults()
	st, err := pipeline.OpenStore(filepath.Join(cfg.Out, "store"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	env := &pipeline.Env{Store: st, Config: cfg, Progress: pipeline.NewProgress(io.Discard, false, true)}
	if err := pipeline.Run(context.Background(), env, []pipeline.Stage{CorpusStage()}); err != nil {
		tb.Fatal(err)
	}
	return env
}

// fixedGenerator answers at once with a realistic instruct answer: the
// pipeline's own cost with no network.
type fixedGenerator struct{}

func (fixedGenerator) Generate(ctx context.Context, req llm.Request) ([]dataset.Answer, error) {
	out := make([]dataset.Answer, max(req.N, 1))
	for i := range out {
		out[i] = dataset.Answer{Content: fmt.Sprintf("Here is a question based on the passage:\n\n\"what does %d say about %s?\"", req.Seed+i, req.Type),
			FinishReason: "stop", PromptTokens: 300, CompletionTokens: 15}
	}
	return out, nil
}

func runGenerateBench(b *testing.B, passages int, types []string, gen Generator, concurrency int) {
	corpus := synthCorpus(b, passages)
	var requests int64
	var elapsed, genTime time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		env := benchEnv(b, corpus, &pipeline.Config{QueryTypes: types, Concurrency: concurrency})
		b.StartTimer()
		start := time.Now()
		if err := pipeline.Run(context.Background(), env, []pipeline.Stage{GenerateStage(&Deps{Generator: gen})}); err != nil {
			b.Fatal(err)
		}
		genTime += time.Since(start)
		if err := pipeline.Run(context.Background(), env, []pipeline.Stage{FilterStage()}); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		requests += env.Counters("generate").Snapshot()["requests"]
	}
	b.ReportMetric(float64(requests)/genTime.Seconds(), "req/s")
	b.ReportMetric(float64(elapsed.Microseconds())/float64(requests), "µs/query")
}

// BenchmarkGenerateSaturation: a fake server with 40 ms latency that takes
// 32 requests at once (capacity 800 req/s) and refuses more with 503;
// --concurrency 32; 3,000 requests per iteration. Run with -benchtime 1x.
func BenchmarkGenerateSaturation(b *testing.B) {
	lf := fakes.NewLLM(benchModel)
	defer lf.Close()
	lf.Latency, lf.MaxInFlight = 40*time.Millisecond, 32
	client := httpx.New(&httpx.Options{})
	gen := llm.NewOpenAI(lf.URL(), benchModel, "", client)
	runGenerateBench(b, 1000, []string{"questions", "claims", "titles"}, gen, 32)
	b.ReportMetric(float64(lf.Refused.Load()), "refused")
	b.ReportMetric(float64(client.Retries()), "retries")
}

// BenchmarkGenerateZeroLatency: the same flow against an in-process fake
// HTTP server that answers at once: the cost of the client, JSON, store
// writes and parsing per query.
func BenchmarkGenerateZeroLatency(b *testing.B) {
	lf := fakes.NewLLM(benchModel)
	defer lf.Close()
	gen := llm.NewOpenAI(lf.URL(), benchModel, "", httpx.New(&httpx.Options{}))
	runGenerateBench(b, 1000, []string{"questions", "claims", "titles"}, gen, 16)
}

// BenchmarkGenerateOwnCost: no HTTP at all (an in-process generator):
// prompt rendering, fingerprints, store writes, parsing and dedup per query.
func BenchmarkGenerateOwnCost(b *testing.B) {
	runGenerateBench(b, 2000, []string{"questions", "claims", "titles"}, fixedGenerator{}, 16)
}

// minedEnv runs corpus → generate (offline) → filter → mine.
func minedEnv(b *testing.B, passages int, types []string, concurrency int) *pipeline.Env {
	corpus := synthCorpus(b, passages)
	env := benchEnv(b, corpus, &pipeline.Config{QueryTypes: types, Concurrency: concurrency, Offline: true, MinCandidates: 1})
	if err := pipeline.Run(context.Background(), env, []pipeline.Stage{
		GenerateStage(&Deps{Generator: llm.Offline{}}), FilterStage(), MineStage(nil)}); err != nil {
		b.Fatal(err)
	}
	return env
}

func runLabelBench(b *testing.B, env *pipeline.Env, sc Scorer) {
	var pairs, requests int64
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for _, p := range []string{pipeline.PrefixScore, pipeline.PrefixFail} {
			if err := env.Store.DropPrefix(p); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		if err := pipeline.Run(context.Background(), env, []pipeline.Stage{LabelStage(&Deps{Scorer: sc})}); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		c := env.Counters("label").Snapshot()
		pairs += c["pairs_scored"]
		requests += (c["pairs_scored"] + 31) / 32
	}
	b.ReportMetric(float64(pairs)/elapsed.Seconds(), "pairs/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(pairs), "ns/pair")
}

// constScorer answers at once: the label stage's own cost per pair (passage
// reads, score cache writes).
type constScorer struct{}

func (constScorer) Score(ctx context.Context, q string, ps []string) ([]float32, error) {
	out := make([]float32, len(ps))
	for i := range out {
		out[i] = float32(len(ps[i]) % 13)
	}
	return out, nil
}

// BenchmarkLabelOwnCost: 3,000 queries × 100 candidates with an in-process
// scorer that costs nothing.
func BenchmarkLabelOwnCost(b *testing.B) {
	env := minedEnv(b, 3000, []string{"questions"}, 16)
	runLabelBench(b, env, constScorer{})
}

// BenchmarkLabelZeroLatencyTEI: the same through the TEI client and a fake
// TEI server that answers at once (JSON both ways, batches of 32).
func BenchmarkLabelZeroLatencyTEI(b *testing.B) {
	env := minedEnv(b, 3000, []string{"questions"}, 16)
	rr := fakes.NewReranker("tei", "BAAI/bge-reranker-v2-m3")
	defer rr.Close()
	sc, err := teacher.New(teacher.Config{API: "tei", URL: rr.URL, Batch: 32, Doer: httpx.New(&httpx.Options{})})
	if err != nil {
		b.Fatal(err)
	}
	runLabelBench(b, env, sc)
}

// BenchmarkLabelSaturation: a fake TEI with 40 ms latency taking 32
// requests at once (800 req/s, 25,600 pairs/s at 32 a batch; 429 beyond);
// --concurrency 32. Run with -benchtime 1x.
func BenchmarkLabelSaturation(b *testing.B) {
	env := minedEnv(b, 2000, []string{"questions"}, 32)
	rr := fakes.NewReranker("tei", "BAAI/bge-reranker-v2-m3")
	defer rr.Close()
	rr.Latency, rr.MaxInFlight = 40*time.Millisecond, 32
	client := httpx.New(&httpx.Options{})
	sc, err := teacher.New(teacher.Config{API: "tei", URL: rr.URL, Batch: 32, Doer: client})
	if err != nil {
		b.Fatal(err)
	}
	start := rr.Counter.Total()
	t0 := time.Now()
	runLabelBench(b, env, sc)
	b.ReportMetric(float64(rr.Counter.Total()-start)/time.Since(t0).Seconds(), "req/s")
	b.ReportMetric(float64(rr.Refused.Load()), "refused")
	b.ReportMetric(float64(client.Retries()), "retries")
}
