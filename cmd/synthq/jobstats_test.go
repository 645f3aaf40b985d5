package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synthq/synthq/pipeline"
)

// stats --merge reads each store's progress file (no store is opened, so
// the shards may hold their locks), says which shard is where, calls a
// running shard whose file stopped moving stale, names a store with no
// file, and sums the funnel (passages: the largest count, as every shard
// reads the whole corpus).
func TestStatsMergeReadsProgressFiles(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	write := func(name string, p pipeline.RunProgress) string {
		d := filepath.Join(dir, name, "store")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := pipeline.WriteProgressFile(d, p); err != nil {
			t.Fatal(err)
		}
		return d
	}
	counts := func(passages, asked, rows int64) map[string]map[string]int64 {
		return map[string]map[string]int64{"corpus": {"passages": passages}, "filter": {"passages_asked": asked},
			"export": {"rows_train": rows}}
	}
	s0 := write("shard0", pipeline.RunProgress{Shard: "0/3", State: pipeline.StateDone, Updated: now.Add(-time.Minute),
		Stages: map[string]pipeline.BarState{"generate": {Done: 60, Total: 60, Ended: true}, "export": {Done: 50, Total: 50, Ended: true}},
		Counts: counts(40, 13, 50)})
	s1 := write("shard1", pipeline.RunProgress{Shard: "1/3", State: pipeline.StateRunning, Updated: now.Add(-time.Second),
		Stages: map[string]pipeline.BarState{"corpus": {Done: 40, Ended: true}, "generate": {Done: 30, Total: 84}},
		Counts: counts(40, 14, 0)})
	s2 := write("shard2", pipeline.RunProgress{Shard: "2/3", State: pipeline.StateRunning, Updated: now.Add(-10 * time.Minute),
		Stages: map[string]pipeline.BarState{"generate": {Done: 3, Total: 78}}, Counts: counts(40, 13, 0)})
	missing := filepath.Join(dir, "shard3", "store")
	// The shards' stores are held (a live run's lock): stats must not open them.
	held, err := pipeline.OpenStore(s1)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	code, out := synthq(t, context.Background(), "stats", "--merge", s2, missing, s1, s0)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{
		"job: 4 stores: 1 done, 1 no progress file, 1 running, 1 stale",
		"0/3    done         export    50/50 100.0%",
		"1/3    running      generate  30/84  35.7%",
		"2/3    stale        generate  3/78   3.8%",
		"-      no progress file",
		"  passages                         40\n",
		"passages asked about (this shard; duplicates, held-out and unsampled passages removed) 40",
		"  exported                         50\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stats --merge lacks %q:\n%s", want, out)
		}
	}
	if i0, i1 := strings.Index(out, "0/3"), strings.Index(out, "1/3"); i0 > i1 {
		t.Errorf("shards not in index order:\n%s", out)
	}
	code, out = synthq(t, context.Background(), "stats", "--merge", "--json", s0, s1)
	if code != 0 || !strings.Contains(out, `"shards"`) || !strings.Contains(out, `"funnel"`) {
		t.Errorf("--json: exit %d: %s", code, out)
	}
}
