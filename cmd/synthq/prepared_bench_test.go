package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/synthq/synthq/internal/fakes"
)

// TestPreparedBenchmark measures four shards run side by side with and
// without --prepared against one fake embeddings server whose every request
// takes 20 ms (a GPU's batch): embedding requests, texts embedded and wall
// time. Off unless SYNTHQ_BENCH_PREPARED=N (passages of a seeded synthetic
// corpus, made by internal/cmd/mkcorpus). Figures in BENCHMARKS.md.
func TestPreparedBenchmark(t *testing.T) {
	n := os.Getenv("SYNTHQ_BENCH_PREPARED")
	if n == "" {
		t.Skip("set SYNTHQ_BENCH_PREPARED=2000 to measure (BENCHMARKS.md)")
	}
	dir := t.TempDir()
	corpusFile := filepath.Join(dir, "corpus.jsonl")
	if out, err := exec.Command("go", "run", "../../internal/cmd/mkcorpus", "-n", n, "-vocab", "20000", "-topics", "200", "-out", corpusFile).CombinedOutput(); err != nil {
		t.Fatalf("mkcorpus: %v: %s", err, out)
	}
	emb := fakes.NewEmbedder("vllm", "e5", 64)
	emb.Latency = 20 * time.Millisecond
	t.Cleanup(emb.Close)
	base := []string{"--offline", "--quiet", "--corpus", corpusFile, "--min-candidates", "5", "--max-passages", "200",
		"--retriever", "bm25,dense", "--embed-url", emb.URL(), "--embed-model", "e5", "--embed-batch", "32", "--embed-concurrency", "4"}
	shards := func(extra ...string) {
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				args := append(append([]string{"run"}, base...), "--out", filepath.Join(dir, fmt.Sprintf("%v-%d", extra, i)), "--shard", fmt.Sprintf("%d/4", i))
				if code, msg := synthq(t, context.Background(), append(args, extra...)...); code != 0 {
					t.Errorf("shard %d: exit %d: %s", i, code, msg)
				}
			}()
		}
		wg.Wait()
	}
	measure := func(name string, fn func()) {
		r0, i0, t0 := emb.Counter.Total(), emb.Inputs.Load(), time.Now()
		fn()
		t.Logf("%-34s %6d embedding requests %8d texts  %6.1f s", name, emb.Counter.Total()-r0, emb.Inputs.Load()-i0, time.Since(t0).Seconds())
	}
	measure("4 shards, no --prepared", func() { shards() })
	prep := filepath.Join(dir, "prep")
	measure("prepare", func() {
		if code, msg := synthq(t, context.Background(), append(append([]string{"prepare"}, base...), "--out", prep)...); code != 0 {
			t.Fatalf("prepare: exit %d: %s", code, msg)
		}
	})
	measure("4 shards on --prepared", func() { shards("--prepared", prep) })
}
