package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/pipeline"
)

// Fleet tests: servers that go away and come back, refuse systematically,
// or are stopped under; the scheduler's behaviour seen through the CLI.
// No concurrency flag is given: every endpoint's limit is found (auto).

const teacherModel = "BAAI/bge-reranker-v2-m3"

// fleetArgs are the run arguments for the LLM endpoints llmURLs and the
// TEI teacher at teacherURL: 40 passages × 2 query types = 80 LLM requests.
func fleetArgs(out, teacherURL string, llmURLs ...string) []string {
	args := []string{"run", "--corpus", corpus, "--out", out, "--quiet", "--llm-model", model,
		"--teacher-url", teacherURL, "--teacher-api", "tei", "--teacher-model", teacherModel,
		"--min-candidates", "5", "--dev-fraction", "0.2", "--seed", "7", "--query-types", "questions,keywords"}
	for _, u := range llmURLs {
		args = append(args, "--llm-url", u)
	}
	return args
}

// fleetRef makes the uninterrupted reference run and returns its output
// directory.
func fleetRef(t *testing.T) string {
	t.Helper()
	ref := t.TempDir()
	llm := fakes.NewLLM(model)
	rr := fakes.NewReranker("tei", teacherModel)
	defer llm.Close()
	defer rr.Close()
	if code, msg := synthq(t, context.Background(), fleetArgs(ref, rr.URL, llm.URL())...); code != 0 {
		t.Fatalf("reference run: exit %d: %s", code, msg)
	}
	return ref
}

// storedFailures is the number of failures `synthq stats` lists for out.
func storedFailures(t *testing.T, out string) int {
	t.Helper()
	code, msg := synthq(t, context.Background(), "stats", "--store", filepath.Join(out, "store"), "--json")
	var js struct {
		Failures []json.RawMessage `json:"failures"`
	}
	if code != 0 || json.Unmarshal([]byte(msg), &js) != nil {
		t.Fatalf("stats: exit %d: %s", code, msg)
	}
	return len(js.Failures)
}

// outageAt takes srv down (connections refused, open ones closed) once the
// fake has served its n-th request, and up again after d (never when d is
// 0). The returned channel is closed when it went down.
func outageAt(f *fakes.LLM, n int64, d time.Duration) <-chan struct{} {
	down := make(chan struct{})
	var once sync.Once
	f.OnServe = func(k int64) {
		if k < n {
			return
		}
		once.Do(func() {
			go func() {
				time.Sleep(10 * time.Millisecond) // let this answer go out
				fakes.Down(f.Server)
				close(down)
				if d > 0 {
					time.Sleep(d)
					fakes.Up(f.Server)
				}
			}()
		})
	}
	return down
}

// An LLM restart of 3 s mid-run, within --max-outage: the run waits, says
// so once, resumes, exits 0 with nothing failed and the same bytes as an
// uninterrupted run.
func TestOutageShorterThanMaxOutage(t *testing.T) {
	ref := fleetRef(t)
	out := t.TempDir()
	llm, rr := fleetFakes(t)
	llm.Latency = 20 * time.Millisecond
	down := outageAt(llm, 20, 3*time.Second)
	start := time.Now()
	code, msg := synthq(t, context.Background(), append(fleetArgs(out, rr.URL, llm.URL()), "--max-outage", "30s")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	select {
	case <-down:
	default:
		t.Fatal("the outage never happened")
	}
	if el := time.Since(start); el < 3*time.Second {
		t.Errorf("run took %s, shorter than the outage", el)
	}
	sameFiles(t, ref, out)
	if n := storedFailures(t, out); n != 0 {
		t.Errorf("%d failures recorded for an outage", n)
	}
	if c := strings.Count(msg, "unreachable since"); c != 1 || !strings.Contains(msg, "; waiting") {
		t.Errorf("log says 'unreachable since … waiting' %d times, want once:\n%s", c, msg)
	}
	if !strings.Contains(msg, "answers again after") || !strings.Contains(msg, "resuming") {
		t.Errorf("log lacks 'answers again after …; resuming':\n%s", msg)
	}
	t.Logf("log:\n%s", msg)
}

// An outage longer than --max-outage stops the run with the endpoint's
// message and the resume hint, nothing recorded failed; the same command
// with the server back completes with the uninterrupted run's bytes.
func TestOutageLongerThanMaxOutage(t *testing.T) {
	ref := fleetRef(t)
	out := t.TempDir()
	llm, rr := fleetFakes(t)
	llm.Latency = 20 * time.Millisecond
	outageAt(llm, 20, 0)
	args := append(fleetArgs(out, rr.URL, llm.URL()), "--max-outage", "2s")
	start := time.Now()
	code, msg := synthq(t, context.Background(), args...)
	el := time.Since(start)
	if code == 0 || !strings.Contains(msg, "unreachable for 2s") || !strings.Contains(msg, "re-run the same command to resume") {
		t.Fatalf("exit %d, want ≠ 0 with 'unreachable for 2s … re-run the same command to resume':\n%s", code, msg)
	}
	if el < 2*time.Second || el > 15*time.Second {
		t.Errorf("gave up after %s, want a little over --max-outage 2s", el)
	}
	t.Logf("exit %d after %s:\n%s", code, el.Round(time.Millisecond), msg)
	if n := storedFailures(t, out); n != 0 {
		t.Errorf("%d failures recorded for an outage", n)
	}
	if err := fakes.Up(llm.Server); err != nil {
		t.Fatal(err)
	}
	llm.OnServe = nil
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("re-run with the server back: exit %d: %s", code, msg)
	}
	sameFiles(t, ref, out)
	if n := storedFailures(t, out); n != 0 {
		t.Errorf("%d failures after the resumed run", n)
	}
}

// A server that answers every request with 429 and Retry-After: 1 forever
// (issue 25: it was never marked down, its refusals never counted, and the
// run was still waiting at 20 s with --max-outage 3s) stops the run after
// --max-outage with the server's words and the resume hint; nothing is
// recorded failed.
func TestRefusingForeverStopsAfterMaxOutage(t *testing.T) {
	out := t.TempDir()
	llm, rr := fleetFakes(t, func(f *fakes.LLM) { f.Fault = func(int64, []byte) string { return "429" } })
	start := time.Now()
	code, msg := synthq(t, context.Background(), append(fleetArgs(out, rr.URL, llm.URL()), "--max-outage", "3s")...)
	el := time.Since(start)
	if code != exitError || !strings.Contains(msg, "refused every request for 3s (HTTP 429: Too many requests)") ||
		!strings.Contains(msg, "re-run the same command to resume") {
		t.Fatalf("exit %d, want 1 with 'refused every request for 3s (HTTP 429: Too many requests)' and the hint:\n%s", code, msg)
	}
	if el > 12*time.Second {
		t.Errorf("gave up after %s, want a little over --max-outage 3s", el)
	}
	if n := llm.Counter.Total(); n > 100 {
		t.Errorf("%d requests to a server refusing everything for 3 s: it should be waited out, not hammered", n)
	}
	if n := storedFailures(t, out); n != 0 {
		t.Errorf("%d failures recorded for an outage", n)
	}
	t.Logf("exit %d after %s, %d requests:\n%s", code, el.Round(time.Millisecond), llm.Counter.Total(), msg)
}

// The same 400 for every request (OpenAI's answer to max_tokens for its
// reasoning models) stops the run within a handful of requests, shows the
// server's message, and records nothing as failed.
func TestSystematic400StopsEarly(t *testing.T) {
	out := t.TempDir()
	llm, rr := fleetFakes(t)
	llm.Fault = func(int64, []byte) string { return "400-max-tokens" }
	code, msg := synthq(t, context.Background(), fleetArgs(out, rr.URL, llm.URL())...)
	if code != exitError || !strings.Contains(msg, "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.") {
		t.Fatalf("exit %d, want 1 with the server's message:\n%s", code, msg)
	}
	if n := llm.Counter.Total(); n > 14 {
		t.Errorf("%d requests sent before stopping, want ≤ 14 (10 identical refusals and those in flight)", n)
	} else {
		t.Logf("stopped after %d requests: %s", n, msg)
	}
	if n := storedFailures(t, out); n != 0 {
		t.Errorf("%d failures recorded for a misconfiguration", n)
	}
	_, stats := synthq(t, context.Background(), "stats", "--store", filepath.Join(out, "store"))
	if !strings.Contains(stats, "failures  0") {
		t.Errorf("stats should show 0 failures:\n%s", stats)
	}
}

// One of two LLM endpoints goes down mid-run and stays down: the other
// takes all the work, the log says so, and the run ends as an
// uninterrupted one.
func TestOneOfTwoLLMEndpointsDown(t *testing.T) {
	ref := fleetRef(t)
	out := t.TempDir()
	a, b := fakes.NewLLM(model), fakes.NewLLM(model)
	rr := fakes.NewReranker("tei", teacherModel)
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	t.Cleanup(rr.Close)
	a.Latency, b.Latency = 20*time.Millisecond, 20*time.Millisecond
	down := outageAt(b, 10, 0)
	code, msg := synthq(t, context.Background(), append(fleetArgs(out, rr.URL, a.URL(), b.URL()), "--max-outage", "5s")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	select {
	case <-down:
	default:
		t.Fatal("b never went down")
	}
	sameFiles(t, ref, out)
	if n := storedFailures(t, out); n != 0 {
		t.Errorf("%d failures", n)
	}
	if !strings.Contains(msg, "going on with the others") || strings.Contains(msg, "; waiting") {
		t.Errorf("log should say b is down and the run goes on with a, never that it waits:\n%s", msg)
	}
	bServed := b.Completed.Load()
	if bServed < 10 || bServed > 20 || a.Completed.Load() < 80-bServed {
		t.Errorf("a answered %d, b %d (b down after its 10th): want a to answer the rest", a.Completed.Load(), bServed)
	}
	t.Logf("a answered %d, b %d; log:\n%s", a.Completed.Load(), bServed, msg)
}

// SIGINT keeps the answers in flight: a real synthq process is stopped
// while requests of 1.5 s are in flight; it exits 130, every request the
// LLM received was answered and stored, none arrived after the signal. A
// second SIGINT abandons the requests in flight at once.
func TestSigintKeepsInFlightAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := buildBinary(t)

	for _, extra := range [][]string{nil, {"--concurrency", "4"}} {
		name := "one signal, auto concurrency"
		if extra != nil {
			name = "one signal, " + strings.Join(extra, " ")
		}
		t.Run(name, func(t *testing.T) { sigintOnce(t, bin, extra) })
	}

	t.Run("second signal abandons", func(t *testing.T) {
		out := t.TempDir()
		// Set before the fake serves: the requests come from another
		// process, which the race detector cannot see synchronise.
		llm, rr := fleetFakes(t, func(f *fakes.LLM) { f.Latency = 4 * time.Second })
		cmd, wait, stderr := startSynthq(t, bin, fleetArgs(out, rr.URL, llm.URL())...)
		deadline := time.Now().Add(15 * time.Second)
		for llm.InFlight() < 1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGINT)
		time.Sleep(300 * time.Millisecond)
		var err error
		select {
		case err = <-wait:
			t.Fatalf("exit %d within 300 ms of the first SIGINT, with a request of 4 s in flight: the first signal should wait for it:\n%s",
				exitCode(err), stderr.String())
		default:
		}
		second := time.Now()
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case err = <-wait:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("still running 5 s after the second SIGINT:\n%s", stderr.String())
		}
		if code := exitCode(err); code != exitInterrupted {
			t.Errorf("exit %d, want 130:\n%s", code, stderr.String())
		}
		if d := time.Since(second); d > 2*time.Second {
			t.Errorf("exited %s after the second SIGINT, want at once", d)
		} else {
			t.Logf("exit after the second SIGINT in %s", d.Round(time.Millisecond))
		}
		if !strings.Contains(stderr.String(), "abandoning the requests in flight") {
			t.Errorf("stderr lacks the abandon line:\n%s", stderr.String())
		}
	})
}

// sigintOnce stops a run with one SIGINT while requests of 1.5 s are in
// flight and checks that their answers are waited for and stored.
func sigintOnce(t *testing.T, bin string, extra []string) {
	out := t.TempDir()
	var mu sync.Mutex
	var arrivals []time.Time
	llm, rr := fleetFakes(t, func(f *fakes.LLM) {
		f.Latency = 1500 * time.Millisecond
		f.Inspect = func([]byte) {
			mu.Lock()
			arrivals = append(arrivals, time.Now())
			mu.Unlock()
		}
	})
	cmd, wait, stderr := startSynthq(t, bin, append(fleetArgs(out, rr.URL, llm.URL()), extra...)...)
	// Wait until several requests are in flight (past the first one,
	// which finds out the server's n support alone).
	deadline := time.Now().Add(15 * time.Second)
	for llm.InFlight() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if llm.InFlight() < 3 {
		cmd.Process.Kill()
		t.Fatalf("never 3 requests in flight (%d received)", llm.Counter.Total())
	}
	inFlight := llm.InFlight()
	sigAt := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	var err error
	select {
	case err = <-wait:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("still running 10 s after SIGINT:\n%s", stderr.String())
	}
	exitAfter := time.Since(sigAt)
	if code := exitCode(err); code != exitInterrupted {
		t.Fatalf("exit %d after SIGINT, want 130:\n%s", code, stderr.String())
	}
	mu.Lock()
	late := 0
	// The signal is handled a moment after it is sent, and a request
	// sent just before arrives just after: only arrivals well after the
	// signal are requests the stop should have held back.
	for _, at := range arrivals {
		if at.After(sigAt.Add(100 * time.Millisecond)) {
			late++
		}
	}
	received := len(arrivals)
	mu.Unlock()
	if late > 0 {
		t.Errorf("%d requests arrived after the signal", late)
	}
	completed := llm.Completed.Load()
	if int64(received) != completed {
		t.Errorf("the fake received %d requests and answered %d: requests in flight were abandoned", received, completed)
	}
	st, err := pipeline.OpenStore(filepath.Join(out, "store"))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := st.Count(pipeline.PrefixLLM)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if int64(stored) != completed {
		t.Errorf("%d LLM answers stored, the fake answered %d", stored, completed)
	}
	if exitAfter < time.Second/2 {
		t.Errorf("exited %s after SIGINT: it did not wait for the %d in flight", exitAfter, inFlight)
	}
	t.Logf("%d in flight at SIGINT; exit 130 after %s; %d received, %d answered, %d stored", inFlight,
		exitAfter.Round(time.Millisecond), received, completed, stored)
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// startSynthq starts the binary with args and returns the command, a channel
// that gets its exit, and its standard error (to read once it has exited).
func startSynthq(t testing.TB, bin string, args ...string) (*exec.Cmd, <-chan error, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wait := make(chan error, 1)
	go func() { wait <- cmd.Wait() }()
	return cmd, wait, stderr
}

// fleetFakes starts the LLM (configured by opts before it serves) and a TEI
// teacher, closed when the test ends.
func fleetFakes(t *testing.T, opts ...func(*fakes.LLM)) (*fakes.LLM, *fakes.Reranker) {
	llm := fakes.NewLLM(model, opts...)
	rr := fakes.NewReranker("tei", teacherModel)
	t.Cleanup(llm.Close)
	t.Cleanup(rr.Close)
	return llm, rr
}
