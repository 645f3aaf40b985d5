package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// buildBinary builds synthq once for tests that need a real process.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "synthq")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Kill-anywhere: a real synthq process is SIGKILLed at seeded random moments
// (SYNTHQ_KILLS times, default 6), each time re-started on the same store,
// then run to completion. The data files must be byte-identical to an
// uninterrupted run's, and the requests sent twice must be bounded by what
// was in flight at the kills (concurrency × kills).
func TestKillAnywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	kills, err := killsFromEnv(os.Getenv("SYNTHQ_KILLS"))
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	ref := t.TempDir()
	_, _, refArgs := fakeArgs(t, "tei", ref)
	if code, msg := synthq(t, context.Background(), refArgs...); code != 0 {
		t.Fatalf("reference: exit %d: %s", code, msg)
	}

	out := t.TempDir()
	llm, rr, args := fakeArgsLatency(t, "tei", out, 10*time.Millisecond, 15*time.Millisecond) // a run lasts 2–3 s
	r := rand.New(rand.NewPCG(2026, 11))
	done, killed := false, 0
	for k := 0; k < kills && !done; k++ {
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wait := make(chan error, 1)
		go func() { wait <- cmd.Wait() }()
		at := time.Duration(50+r.IntN(350)) * time.Millisecond
		select {
		case err := <-wait:
			done = err == nil // finished before the kill: nothing left to interrupt
		case <-time.After(at):
			cmd.Process.Kill()
			<-wait
			killed++
			t.Logf("kill %d after %s: %d LLM, %d teacher requests so far", k+1, at, llm.Counter.Total(), rr.Counter.Total())
		}
	}
	if killed < kills {
		t.Errorf("only %d of %d kills landed before the run finished: slow the fakes down", killed, kills)
	}
	cmd := exec.Command(bin, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("final run: %v\n%s", err, b)
	}
	sameFiles(t, ref, out)
	const concurrency = 4 // fakeArgs
	if rep := llm.Counter.Repeated(); rep > kills*concurrency {
		t.Errorf("%d LLM requests sent twice, more than the %d in flight at %d kills", rep, kills*concurrency, kills)
	}
	if rep := rr.Counter.Repeated(); rep > kills*concurrency {
		t.Errorf("%d teacher requests sent twice, more than the %d in flight at %d kills", rep, kills*concurrency, kills)
	}
	if got := llm.Counter.Total() - int64(llm.Counter.Repeated()); got != 240 {
		t.Errorf("%d distinct LLM requests, want 240", got)
	}
}

// killsFromEnv reads SYNTHQ_KILLS: unset means 6; anything but a positive
// integer is an error (a typo must not turn the test into zero kills that
// pass).
func killsFromEnv(s string) (int, error) {
	if s == "" {
		return 6, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("SYNTHQ_KILLS=%q: want a positive number of kills", s)
	}
	return n, nil
}

func TestKillsFromEnv(t *testing.T) {
	for s, want := range map[string]int{"": 6, "1": 1, "20": 20} {
		if n, err := killsFromEnv(s); err != nil || n != want {
			t.Errorf("SYNTHQ_KILLS=%q: %d, %v; want %d", s, n, err, want)
		}
	}
	for _, s := range []string{"0", "-3", "six", "6x", " 6"} {
		if n, err := killsFromEnv(s); err == nil {
			t.Errorf("SYNTHQ_KILLS=%q accepted as %d", s, n)
		}
	}
}
