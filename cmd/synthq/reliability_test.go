package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/pipeline"
)

var dataFiles = []string{"train.arrow", "dev.arrow", "train.parquet", "dev.parquet"}

func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	for _, f := range dataFiles {
		x, _ := os.ReadFile(filepath.Join(a, f))
		y, _ := os.ReadFile(filepath.Join(b, f))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s differs from the clean run (%d vs %d bytes)", f, len(x), len(y))
		}
	}
}

// faultEvery returns a Fault that fails the first attempt of about a quarter
// of the distinct request bodies (chosen by body hash, so the choice does not
// depend on timing), cycling through every failure a real server produces.
func faultEvery(c *fakes.Counter, modes []string) fakes.Fault {
	return func(n int64, body []byte) string {
		if c.Count(body) != 1 {
			return "" // retries succeed
		}
		h := pipeline.Hash64(string(body))
		if h%4 != 0 {
			return ""
		}
		return modes[(h/4)%uint64(len(modes))]
	}
}

// Faults on a quarter of requests (429 with Retry-After, 500, 503, a 200
// with an HTML body, JSON cut in half, connection resets, hangs past the
// timeout) change nothing in the data files; the retries are in the manifest.
func TestFaultsLeaveOutputIdentical(t *testing.T) {
	clean := t.TempDir()
	_, _, cleanArgs := fakeArgs(t, "tei", clean)
	cleanArgs = append(cleanArgs, "--query-types", "questions,keywords")
	if code, msg := synthq(t, context.Background(), cleanArgs...); code != 0 {
		t.Fatalf("clean run: exit %d: %s", code, msg)
	}
	out := t.TempDir()
	llm, rr, args := fakeArgs(t, "tei", out)
	modes := []string{"429", "500", "503", "html", "truncated", "reset", "hang"}
	llm.Fault = faultEvery(&llm.Counter, modes)
	rr.Fault = faultEvery(&rr.Counter, modes)
	args = append(args, "--query-types", "questions,keywords", "--request-timeout", "500ms", "--concurrency", "16")
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("faulty run: exit %d: %s", code, msg)
	}
	sameFiles(t, clean, out)
	m := manifestOf(t, out)
	llmRetries, _ := m.Run["llm_retries"].(float64)
	teacherRetries, _ := m.Run["teacher_retries"].(float64)
	if llmRetries < 10 || teacherRetries < 3 {
		t.Errorf("manifest retries: llm %v, teacher %v; a quarter of requests failed once", llmRetries, teacherRetries)
	}
	if m.Failures != 0 {
		t.Errorf("%d failures: every fault was transient", m.Failures)
	}
}

// A passage the server always refuses (400 context length) is marked failed
// with its reason, the run completes with exit 3, stats lists it, and
// --retry-failed tries it again.
func TestPermanentFailure(t *testing.T) {
	out := t.TempDir()
	llm, _, args := fakeArgs(t, "tei", out)
	args = append(args, "--query-types", "questions,titles")
	bad := "The desktop client needs 500 MB of free disk space" // kb001's text
	llm.Fault = func(n int64, body []byte) string {
		if strings.Contains(string(body), bad) && strings.Contains(string(body), "Passage: Installing the desktop client") {
			return "400-context"
		}
		return ""
	}
	code, msg := synthq(t, context.Background(), args...)
	if code != exitFailedItems || !strings.Contains(msg, "done with 2 failed items") {
		t.Fatalf("exit %d, want 3 with 'done with 2 failed items': %s", code, msg)
	}
	code, msg = synthq(t, context.Background(), "stats", "--store", filepath.Join(out, "store"))
	if code != 0 || !strings.Contains(msg, "failures  2") || !strings.Contains(msg, "kb001:questions:0") || !strings.Contains(msg, "maximum context length") {
		t.Errorf("stats should list both failures with their reason: %s", msg)
	}
	// A plain re-run does not retry them (and still says so).
	n := llm.Counter.Total()
	if code, _ := synthq(t, context.Background(), args...); code != exitFailedItems || llm.Counter.Total() != n {
		t.Errorf("re-run: exit %d, %d new requests; want 3 and none", code, llm.Counter.Total()-n)
	}
	// --tolerate-failed: 2 failed of 80 queries asked (40 passages × 2
	// types) is 2.5%: exit 3 above the share, 0 (with a warning) within it.
	for _, tc := range []struct {
		share string
		code  int
		want  string
	}{
		{"0.02", exitFailedItems, "done with 2 failed items, 2.50% of 80 queries asked, above --tolerate-failed 0.02"},
		{"0.03", 0, "warning: done with 2 failed items, 2.50% of 80 queries asked, within --tolerate-failed 0.03: exit 0"},
	} {
		if code, msg := synthq(t, context.Background(), append(args, "--tolerate-failed", tc.share)...); code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("--tolerate-failed %s: exit %d, want %d and %q: %s", tc.share, code, tc.code, tc.want, msg)
		}
	}
	if llm.Counter.Total() != n {
		t.Errorf("--tolerate-failed sent %d requests, want none", llm.Counter.Total()-n)
	}
	// The server is fixed; --retry-failed sends exactly the two again.
	llm.Fault = nil
	if code, msg := synthq(t, context.Background(), append(args, "--retry-failed")...); code != 0 {
		t.Fatalf("--retry-failed: exit %d: %s", code, msg)
	}
	if got := llm.Counter.Total() - n; got != 2 {
		t.Errorf("--retry-failed sent %d requests, want 2", got)
	}
	var js struct {
		Failures []json.RawMessage `json:"failures"`
	}
	_, msg = synthq(t, context.Background(), "stats", "--store", filepath.Join(out, "store"), "--json")
	if json.Unmarshal([]byte(msg), &js) != nil || len(js.Failures) != 0 {
		t.Errorf("failures left after a successful retry: %s", msg)
	}
}

// Three machines each run one shard with its own store against the same
// servers; `export --merge` of the three stores writes the same bytes as one
// machine running the whole corpus.
func TestShardsMergeToTheSingleMachineOutput(t *testing.T) {
	ref := t.TempDir()
	llm, _, args := fakeArgs(t, "tei", ref)
	// Answers that repeat across passages, so cross-shard duplicates occur.
	llm.Answer = func(qtype, passage string, seed int) string {
		if seed%5 == 0 {
			return "how do I fix sync errors"
		}
		return fakes.DefaultAnswer(qtype, passage, seed)
	}
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("single machine: exit %d: %s", code, msg)
	}
	single := manifestOf(t, ref)
	var stores []string
	for i := 0; i < 3; i++ {
		out := t.TempDir()
		shardArgs := append(append([]string{}, args...), "--out", out, "--shard", fmt.Sprintf("%d/3", i))
		if code, msg := synthq(t, context.Background(), shardArgs...); code != 0 {
			t.Fatalf("shard %d: exit %d: %s", i, code, msg)
		}
		stores = append(stores, filepath.Join(out, "store"))
	}
	merged := t.TempDir()
	code, msg := synthq(t, context.Background(), append([]string{"export", "--quiet", "--out", merged, "--merge"}, stores...)...)
	if code != 0 {
		t.Fatalf("merge: exit %d: %s", code, msg)
	}
	sameFiles(t, ref, merged)
	m := manifestOf(t, merged)
	if m.Rows["train"] != single.Rows["train"] || m.Targets.P1 != single.Targets.P1 || m.Targets.P99 != single.Targets.P99 {
		t.Errorf("merged manifest rows %v p1 %v p99 %v; single machine %v %v %v", m.Rows, m.Targets.P1, m.Targets.P99, single.Rows, single.Targets.P1, single.Targets.P99)
	}
	if m.Stages["filter"].Counts["drop_"+dataset.DropDuplicateAcrossShards] == 0 {
		t.Errorf("no cross-shard duplicate found: the test answers should produce some")
	}
	// A missing shard, or stores from another run, are refused.
	code, msg = synthq(t, context.Background(), "export", "--quiet", "--out", t.TempDir(), "--merge", stores[0], stores[2])
	if code != exitError || !strings.Contains(msg, "shard 1/3 is missing") {
		t.Errorf("incomplete merge: exit %d: %s", code, msg)
	}
	code, msg = synthq(t, context.Background(), "export", "--quiet", "--out", t.TempDir(), "--merge", stores[0], filepath.Join(ref, "store"))
	if code != exitError || !strings.Contains(msg, "merge: store") {
		t.Errorf("foreign store: exit %d: %s", code, msg)
	}
}
