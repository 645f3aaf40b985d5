package stages

import (
	"context"
	"testing"
	"time"

	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/llm"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/teacher"
)

// Fleet scheduling benchmarks (issue 12): the three kinds of server under
// load, each alone and an LLM with a teacher together, with no concurrency
// setting: every endpoint's limit is found by its scheduler. Each figure is
// a ratio to the server's capacity. Run with -benchtime 1x (each takes
// 15–50 s):
//
//	go test ./stages -run XXX -bench Fleet -benchtime 1x -count 1
//
// The servers are slow enough (≤ 320 req/s) that the 2 cores shared by
// the fakes and synthq are not what limits the rate.

// fleetBatching is a vLLM-like engine: steps of 5 ms + 0.25 ms per running
// sequence, 32 sequences at most, 16 steps a request: best 153.8 req/s
// (32 / (16 · 13 ms)); 41.7 req/s with 4 running, 111 with 16.
func fleetBatching() *fakes.Batching {
	return &fakes.Batching{StepBase: 5 * time.Millisecond, StepPerRunning: 250 * time.Microsecond, MaxRunning: 32, Steps: 16}
}

// fleetSlots is TEI-like: 16 slots of 50 ms, 429 beyond: best 320 req/s.
const (
	fleetSlots   = 16
	fleetSlotLat = 50 * time.Millisecond
)

// autoClient is what `synthq run` builds for a role with no concurrency
// flag.
func autoClient(role, url string) *httpx.Client {
	return httpx.New(&httpx.Options{Endpoints: []string{url}, Role: role, MaxOutage: time.Minute})
}

func reportEndpoint(b *testing.B, prefix string, st httpx.EndpointStats, best float64) {
	b.ReportMetric(st.Rate/best, prefix+"rate/best")
	b.ReportMetric(st.Rate, prefix+"req/s")
	b.ReportMetric(st.SettledS, prefix+"settled_s")
	b.ReportMetric(float64(st.Concurrency), prefix+"limit")
	if st.Requests > 0 {
		b.ReportMetric(float64(st.Refusals)/float64(st.Requests), prefix+"refused/req")
	}
	b.Logf("%s: %d requests, %d answered, %d refused, limit %d (peak %d in flight), %.1f req/s = %.1f%% of %.1f, settled after %.1f s, p50 %.0f ms",
		st.Role, st.Requests, st.Served, st.Refusals, st.Concurrency, st.PeakInFlight, st.Rate, 100*st.Rate/best, best, st.SettledS, st.P50ms)
}

// fleetGenerate runs generate (and filter) over passages × 3 types against
// llm with an auto-limited client.
func fleetGenerate(b *testing.B, lf *fakes.LLM, passages int) httpx.EndpointStats {
	corpus := synthCorpus(b, passages)
	var st httpx.EndpointStats
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		env := benchEnv(b, corpus, &pipeline.Config{QueryTypes: []string{"questions", "claims", "titles"}})
		client := autoClient("llm", lf.URL())
		deps := &Deps{Generator: llm.NewOpenAI(lf.URL(), benchModel, "", client), LLMWorkers: client.Capacity(),
			Clients: []*httpx.Client{client}}
		b.StartTimer()
		if err := pipeline.Run(context.Background(), env, []pipeline.Stage{GenerateStage(deps)}); err != nil {
			b.Fatal(err)
		}
		st = client.Stats()[0]
	}
	return st
}

// BenchmarkFleetBatchingLLM: continuous batching alone (3,000 requests).
func BenchmarkFleetBatchingLLM(b *testing.B) {
	lf := fakes.NewLLM(benchModel)
	defer lf.Close()
	lf.Batching = fleetBatching()
	st := fleetGenerate(b, lf, 1000)
	reportEndpoint(b, "", st, lf.Batching.BestRate())
	b.Logf("engine: at most %d running at once", lf.Batching.Peak())
}

// BenchmarkFleetRPM: a hosted API limited to 6,000 requests a minute (100
// req/s; answers take 200 ms, so 20 in flight are needed), 1,500 requests.
func BenchmarkFleetRPM(b *testing.B) {
	lf := fakes.NewLLM(benchModel)
	defer lf.Close()
	lf.Latency = 200 * time.Millisecond
	lf.RateLimit = &fakes.RateLimit{RPM: 6000}
	st := fleetGenerate(b, lf, 500)
	reportEndpoint(b, "", st, lf.RateLimit.BestRate())
}

// labelledEnv runs corpus → generate (offline) → filter → mine with
// candidates per query (2 teacher requests of 32 at 64).
func minedEnvN(b *testing.B, passages, candidates int) *pipeline.Env {
	corpus := synthCorpus(b, passages)
	env := benchEnv(b, corpus, &pipeline.Config{QueryTypes: []string{"questions"}, Offline: true, MinCandidates: 1, Candidates: candidates})
	if err := pipeline.Run(context.Background(), env, []pipeline.Stage{
		GenerateStage(&Deps{Generator: llm.Offline{}}), FilterStage(), MineStage(nil)}); err != nil {
		b.Fatal(err)
	}
	return env
}

func teacherFor(b *testing.B, rr *fakes.Reranker) (Scorer, *httpx.Client) {
	client := autoClient("teacher", rr.URL)
	sc, err := teacher.New(teacher.Config{API: "tei", URL: rr.URL, Batch: 32, Doer: client})
	if err != nil {
		b.Fatal(err)
	}
	return sc, client
}

// BenchmarkFleetSlotsTeacher: a TEI with 16 slots of 50 ms (320 req/s),
// 2,000 queries × 64 candidates = 4,000 requests of 32.
func BenchmarkFleetSlotsTeacher(b *testing.B) {
	env := minedEnvN(b, 2000, 64)
	rr := fakes.NewReranker("tei", "BAAI/bge-reranker-v2-m3")
	defer rr.Close()
	rr.Latency, rr.MaxInFlight = fleetSlotLat, fleetSlots
	var st httpx.EndpointStats
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for _, p := range []string{pipeline.PrefixScore, pipeline.PrefixFail} {
			if err := env.Store.DropPrefix(p); err != nil {
				b.Fatal(err)
			}
		}
		sc, client := teacherFor(b, rr)
		b.StartTimer()
		if err := pipeline.Run(context.Background(), env, []pipeline.Stage{
			LabelStage(&Deps{Scorer: sc, TeacherWorkers: client.Capacity()})}); err != nil {
			b.Fatal(err)
		}
		st = client.Stats()[0]
	}
	reportEndpoint(b, "", st, float64(fleetSlots)/fleetSlotLat.Seconds())
}

// BenchmarkFleetCombined: generate → filter → mine → label against the
// batching LLM and the slot TEI together, at the size of issue 12's report
// (3,000 passages × 2 types = 6,000 LLM requests; ~5,800 queries × 64
// candidates ≈ 11,900 teacher requests, so the two servers' work is nearly
// equal and neither can hide the other's idle time). The overlapped ideal
// is the busier server's work at its best rate; overlap/ideal is that over
// the wall time. Stages that run in turn reach at most about half of it.
func BenchmarkFleetCombined(b *testing.B) {
	corpus := synthCorpus(b, 3000)
	lf := fakes.NewLLM(benchModel)
	defer lf.Close()
	lf.Batching = fleetBatching()
	rr := fakes.NewReranker("tei", "BAAI/bge-reranker-v2-m3")
	defer rr.Close()
	rr.Latency, rr.MaxInFlight = fleetSlotLat, fleetSlots
	teacherBest := float64(fleetSlots) / fleetSlotLat.Seconds()
	var ls, ts httpx.EndpointStats
	var wall time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		env := benchEnv(b, corpus, &pipeline.Config{QueryTypes: []string{"questions", "claims"}, MinCandidates: 1, Candidates: 64})
		lc := autoClient("llm", lf.URL())
		sc, tc := teacherFor(b, rr)
		deps := &Deps{Generator: llm.NewOpenAI(lf.URL(), benchModel, "", lc), Scorer: sc,
			LLMWorkers: lc.Capacity(), TeacherWorkers: tc.Capacity(), Clients: []*httpx.Client{lc, tc}}
		b.StartTimer()
		start := time.Now()
		if err := pipeline.Run(context.Background(), env, []pipeline.Stage{
			GenerateStage(deps), FilterStage(), MineStage(deps), LabelStage(deps)}); err != nil {
			b.Fatal(err)
		}
		wall = time.Since(start)
		ls, ts = lc.Stats()[0], tc.Stats()[0]
	}
	llmWork := float64(ls.Served) / lf.Batching.BestRate()
	teacherWork := float64(ts.Served) / teacherBest
	ideal := max(llmWork, teacherWork)
	b.ReportMetric(ideal/wall.Seconds(), "overlap/ideal")
	b.ReportMetric(wall.Seconds(), "wall_s")
	b.ReportMetric(float64(ts.Refusals)/float64(max(ts.Requests, 1)), "teacher_refused/req")
	reportEndpoint(b, "llm_", ls, lf.Batching.BestRate())
	reportEndpoint(b, "teacher_", ts, teacherBest)
	b.Logf("wall %.1f s; LLM work %.1f s and teacher work %.1f s at their best rates; ideal (overlapped) %.1f s = %.1f%% of the wall time; in turn %.1f s",
		wall.Seconds(), llmWork, teacherWork, ideal, 100*ideal/wall.Seconds(), llmWork+teacherWork)
}
