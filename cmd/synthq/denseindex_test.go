package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/internal/synthcorpus"
)

// denseArgs is an offline run mining with dense retrieval through a fake
// embedder, searching as index says.
func denseArgs(emb *fakes.Embedder, corpusFile, out, index string, extra ...string) []string {
	return append([]string{"run", "--offline", "--corpus", corpusFile, "--out", out, "--quiet",
		"--retriever", "dense", "--embed-url", emb.Server.URL, "--embed-model", "fake-e5",
		"--query-prefix", "query: ", "--passage-prefix", "passage: ", "--embed-batch", "64",
		"--min-candidates", "5", "--roundtrip-k", "20", "--dense-index", index}, extra...)
}

// An approximate index records how it searched and its recall against
// exact search on a sample of the queries, in the manifest and in stats;
// probing every list is exact search, so its recall is 1.
func TestDenseApproxRecallRecorded(t *testing.T) {
	emb := fakes.NewEmbedder("tei", "fake-e5", 64)
	defer emb.Close()
	for _, tc := range []struct {
		name      string
		args      []string
		mode      string
		perfect   bool
		imperfect bool
	}{
		{"exact", []string{"exact"}, "exact", false, false},
		{"approx-all-lists", []string{"approx", "--dense-lists", "4", "--dense-probe", "4"}, "approx", true, false},
		{"approx-one-list", []string{"approx", "--dense-lists", "8", "--dense-probe", "1"}, "approx", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			if code, msg := synthq(t, context.Background(), denseArgs(emb, corpus, out, tc.args[0], tc.args[1:]...)...); code != 0 {
				t.Fatalf("exit %d: %s", code, msg)
			}
			m := manifestOf(t, out)
			if len(m.DenseIndex) != 1 {
				t.Fatalf("manifest dense_index: %+v", m.DenseIndex)
			}
			d := m.DenseIndex[0]
			if d.Mode != tc.mode || d.Passages != 40 || d.Dim != 64 {
				t.Errorf("dense index record %+v", d)
			}
			if _, err := os.Stat(d.File); err != nil {
				t.Errorf("index file: %v", err)
			}
			if tc.mode == "approx" {
				if d.Queries == 0 || d.Wanted == 0 {
					t.Fatalf("no recall sample recorded: %+v", d)
				}
				if tc.perfect && d.Recall != 1 {
					t.Errorf("every list probed: recall %.4f, want 1", d.Recall)
				}
				if tc.imperfect && d.Recall >= 1 {
					t.Errorf("one list of 8 probed: recall %.4f, want below 1", d.Recall)
				}
			}
			code, msg := synthq(t, context.Background(), "stats", "--store", filepath.Join(out, "store"))
			if code != 0 {
				t.Fatalf("stats: exit %d: %s", code, msg)
			}
			want := map[string]string{"exact": "exact search over 40 passages", "approx": "recall@100 against exact"}[tc.mode]
			if !strings.Contains(msg, want) {
				t.Errorf("stats lacks %q:\n%s", want, msg)
			}
			html := filepath.Join(out, "r.html")
			if code, msg := synthq(t, context.Background(), "report", "--store", filepath.Join(out, "store"), "--out", html); code != 0 {
				t.Fatalf("report: exit %d: %s", code, msg)
			}
			want = map[string]string{"exact": "exact search over 40 passages", "approx": "recall@100 against exact search"}[tc.mode]
			if b, _ := os.ReadFile(html); !strings.Contains(string(b), want) {
				t.Errorf("report lacks %q", want)
			}
		})
	}
}

// A run killed while it builds its approximate index (k-means under way)
// resumes on the same store and exports the same bytes as a run never
// interrupted.
func TestKillDuringDenseIndexBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	corpusFile := filepath.Join(dir, "corpus.jsonl")
	f, err := os.Create(corpusFile)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000
	if err := synthcorpus.Write(f, synthcorpus.Options{N: n, Vocab: 20000, Topics: 100, Copies: 0.01, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	emb := fakes.NewEmbedder("tei", "fake-e5", 32)
	defer emb.Close()
	extra := []string{"--max-passages", "100", "--query-types", "questions", "--dense-lists", "1000", "--dense-probe", "200"}
	ref := filepath.Join(dir, "ref")
	if code, msg := synthq(t, context.Background(), denseArgs(emb, corpusFile, ref, "approx", extra...)...); code != 0 {
		t.Fatalf("reference: exit %d: %s", code, msg)
	}
	out := filepath.Join(dir, "out")
	cmd := exec.Command(bin, denseArgs(emb, corpusFile, out, "approx", extra...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wait := make(chan error, 1)
	go func() { wait <- cmd.Wait() }()
	// The vectors' file is whole once every passage is embedded: from then
	// on the index is being trained.
	full := int64(n * 32 * 4)
	deadline := time.After(2 * time.Minute)
	killed := false
	for !killed {
		select {
		case err := <-wait:
			t.Fatalf("the run ended (%v) before its index build could be interrupted", err)
		case <-deadline:
			cmd.Process.Kill()
			t.Fatal("the index build never started")
		case <-time.After(2 * time.Millisecond):
		}
		tmp, _ := filepath.Glob(filepath.Join(out, "store", "index", "*.vectors.tmp"))
		if len(tmp) == 1 {
			if fi, err := os.Stat(tmp[0]); err == nil && fi.Size() == full {
				cmd.Process.Kill()
				<-wait
				killed = true
			}
		}
	}
	if ivf, _ := filepath.Glob(filepath.Join(out, "store", "index", "*.ivf")); len(ivf) != 0 {
		t.Fatalf("the kill came after the index was written: %v", ivf)
	}
	if b, err := exec.Command(bin, denseArgs(emb, corpusFile, out, "approx", extra...)...).CombinedOutput(); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, b)
	}
	sameFiles(t, ref, out)
	if left, _ := filepath.Glob(filepath.Join(out, "store", "index", "*.tmp")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
