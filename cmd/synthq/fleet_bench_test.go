package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/internal/httpx"
)

// Fleet benchmarks of issue 26: synthq, built and run as its own process
// (so its CPU is measured apart from the stand-ins'), against two stand-ins
// at once with no tuning flag: an LLM that batches continuously (best 476
// req/s, only with ~256 in flight) and a teacher of one of several kinds
// and sizes. Each reports the teacher's rate as a share of that server's
// capacity, the share of teacher requests refused, the whole run against
// the overlapped ideal (the busier server's work at its best rate), and
// synthq's CPU per request. Run with -benchtime 1x; each case takes 10–30 s:
//
//	go test ./cmd/synthq -run XXX -bench FleetTeacher -benchtime 1x -count 1 -v
//	go test ./cmd/synthq -run XXX -bench 'FleetTeacher/slots32-ra1$' -benchtime 1x -v
//
// SYNTHQ_BENCH_PASSAGES sets the corpus size (default 1500 passages ×
// questions,claims: 3,000 chat and ~11,600 rerank requests of 32);
// SYNTHQ_BENCH_PROFILE=DIR writes synthq's CPU profile of each case there.
func BenchmarkFleetTeacher(b *testing.B) {
	passages := 1500
	if v := os.Getenv("SYNTHQ_BENCH_PASSAGES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("SYNTHQ_BENCH_PASSAGES: %v", err)
		}
		passages = n
	}
	bin := buildBinary(b)
	corpus := benchCorpus(b, passages)
	for _, tc := range []struct {
		name    string
		slots   int64
		latency time.Duration
		ra      time.Duration
		tei     bool
	}{
		{name: "slots16", slots: 16, latency: 50 * time.Millisecond},
		{name: "slots16-ra1", slots: 16, latency: 50 * time.Millisecond, ra: time.Second},
		{name: "slots32", slots: 32, latency: 60 * time.Millisecond},
		{name: "slots32-ra1", slots: 32, latency: 60 * time.Millisecond, ra: time.Second},
		{name: "slots128", slots: 128, latency: 240 * time.Millisecond},
		{name: "slots128-ra1", slots: 128, latency: 240 * time.Millisecond, ra: time.Second},
		{name: "tei-tokens", tei: true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				llm := fakes.NewLLM(model, func(f *fakes.LLM) {
					// Steps of 8 ms + 0.1 ms per running sequence, 256 at
					// most, 16 steps a request: best 256/(16·33.6 ms) = 476
					// req/s; 121 req/s with 32 running.
					f.Batching = &fakes.Batching{StepBase: 8 * time.Millisecond, StepPerRunning: 100 * time.Microsecond, MaxRunning: 256, Steps: 16}
				})
				rr := fakes.NewReranker("tei", teacherModel, func(f *fakes.Reranker) {
					f.MaxClientBatch = 64
					if tc.tei {
						// TEI serving a cross-encoder: one batch at a time
						// of up to 64k tokens, 5 ms + 1 µs a token (a full
						// batch 70 ms), --max-concurrent-requests 512.
						f.TokenBatching = &fakes.TokenBatching{Base: 5 * time.Millisecond, PerToken: time.Microsecond, MaxBatchTokens: 65536}
						f.MaxInFlight = 512
						return
					}
					f.Latency, f.MaxInFlight, f.RetryAfter = tc.latency, tc.slots, tc.ra
				})
				out := b.TempDir()
				args := []string{"run", "--corpus", corpus, "--out", out, "--quiet", "--llm-model", model, "--llm-url", llm.URL(),
					"--teacher-url", rr.URL, "--teacher-api", "tei", "--teacher-model", teacherModel,
					"--query-types", "questions,claims", "--candidates", "128", "--min-candidates", "1", "--seed", "7"}
				if dir := os.Getenv("SYNTHQ_BENCH_PROFILE"); dir != "" {
					b.Setenv("SYNTHQ_CPUPROFILE", filepath.Join(dir, tc.name+".pprof"))
				}
				cmd, wait, stderr := startSynthq(b, bin, args...)
				start := time.Now()
				err := <-wait
				wall := time.Since(start)
				llm.Close()
				rr.Close()
				if err != nil {
					b.Fatalf("synthq run: %v\n%s", err, stderr.String())
				}
				ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
				cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
				eps := endpointsOf(b, out)
				ls, ts := eps["llm"], eps["teacher"]
				llmBest := llm.Batching.BestRate()
				teacherBest := float64(tc.slots) / tc.latency.Seconds()
				if tc.tei {
					teacherBest = rr.TokenBatching.BestRate()
					b.Logf("TEI: %.1f requests a batch on average", rr.TokenBatching.MeanBatch())
				}
				ideal := max(float64(ls.Served)/llmBest, float64(ts.Served)/teacherBest)
				reqs := float64(ls.Requests + ts.Requests)
				b.ReportMetric(ideal/wall.Seconds(), "overlap/ideal")
				b.ReportMetric(ts.Rate/teacherBest, "teacher_rate/best")
				b.ReportMetric(float64(ts.Refusals)/float64(max(ts.Requests, 1)), "teacher_refused/req")
				b.ReportMetric(ls.Rate/llmBest, "llm_rate/best")
				b.ReportMetric(float64(cpu.Microseconds())/reqs, "cpu_µs/req")
				b.ReportMetric(wall.Seconds(), "wall_s")
				b.Logf("%s: wall %.1f s, ideal %.1f s (%.1f%%); teacher %d req, %d refused (%.2f%%), limit %d (peak %d), %.1f req/s = %.1f%% of %.1f; llm %d req, %.1f req/s = %.1f%% of %.1f, limit %d (peak %d); synthq CPU %.1f s = %.0f µs a request (%.0f req/s a core)",
					tc.name, wall.Seconds(), ideal, 100*ideal/wall.Seconds(), ts.Requests, ts.Refusals, 100*float64(ts.Refusals)/float64(max(ts.Requests, 1)),
					ts.Concurrency, ts.PeakInFlight, ts.Rate, 100*ts.Rate/teacherBest, teacherBest,
					ls.Requests, ls.Rate, 100*ls.Rate/llmBest, llmBest, ls.Concurrency, ls.PeakInFlight,
					cpu.Seconds(), float64(cpu.Microseconds())/reqs, reqs/cpu.Seconds())
			}
		})
	}
}

// endpointsOf reads the endpoint figures of a run's manifest, by role.
func endpointsOf(tb testing.TB, out string) map[string]httpx.EndpointStats {
	m := manifestOf(tb, out)
	raw, _ := json.Marshal(m.Run["endpoints"])
	var eps []httpx.EndpointStats
	if err := json.Unmarshal(raw, &eps); err != nil {
		tb.Fatalf("manifest endpoints: %v", err)
	}
	by := map[string]httpx.EndpointStats{}
	for _, e := range eps {
		by[e.Role] = e
	}
	return by
}

// benchCorpus writes n synthetic passages (Zipf-distributed words from a
// 5,000-word vocabulary, 60–120 words each; seeded) as BEIR JSONL: the
// corpus of stages' benchmarks.
func benchCorpus(tb testing.TB, n int) string {
	tb.Helper()
	r := rand.New(rand.NewPCG(42, 7))
	z := rand.NewZipf(r, 1.1, 2, 4999)
	vocab := make([]string, 5000)
	for i := range vocab {
		w := make([]byte, 3+r.IntN(7))
		for j := range w {
			w[j] = byte('a' + r.IntN(26))
		}
		vocab[i] = string(w)
	}
	var sb strings.Builder
	for i := 0; i < n; i++ {
		ws := make([]string, 60+r.IntN(61))
		for j := range ws {
			ws[j] = vocab[z.Uint64()]
		}
		line, _ := json.Marshal(map[string]string{"_id": fmt.Sprintf("p%07d", i), "title": ws[0] + " " + ws[1], "text": strings.Join(ws, " ")})
		sb.Write(append(line, '\n'))
	}
	path := filepath.Join(tb.TempDir(), "corpus.jsonl")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}
