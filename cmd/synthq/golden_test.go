package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The exports are pinned byte for byte: testdata/exports.sha256 holds the
// sha256 of every file that a set of runs and exports writes (the data files
// of every layout, format and score scale, the dataset card, and the
// manifest without its timings, paths and live figures). A change that should not change
// the output (a refactor, a move) must leave them all as they are; one that
// should, rewrites them with -update and shows the change in review.
const goldenExports = "testdata/exports.sha256"

// manifestVolatile are the manifest fields that differ between two identical
// runs: timings, paths, the fakes' ports and the endpoints' live figures;
// counts named ahead_* or *cached (work done early, while the stage before
// still ran) depend on timing too.
var manifestVolatile = map[string]bool{"seconds": true, "finished": true, "export_seconds": true, "out": true, "store": true,
	"llm_urls": true, "teacher_urls": true, "embed_urls": true, "endpoints": true,
	// Per-stage counts depend on how much work was done ahead (overlap
	// timing, slower under -race); the rows, targets and files stay pinned.
	"stages": true}

// hashOut adds name/file → sha256 to got for every file directly in dir
// (the store is not an export).
func hashOut(t *testing.T, got map[string]string, name, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			if e.Name() != "store" {
				hashOut(t, got, name+"/"+e.Name(), filepath.Join(dir, e.Name()))
			}
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "manifest.json" {
			if strings.HasPrefix(name, "fakes") {
				continue // a server run's counts (requests, retries) depend on timing
			}
			b = stableManifest(t, b)
		}
		sum := sha256.Sum256(b)
		got[name+"/"+e.Name()] = hex.EncodeToString(sum[:])
	}
}

// stableManifest drops the manifest's timings and paths.
func stableManifest(t *testing.T, b []byte) []byte {
	t.Helper()
	var m any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	var strip func(v any)
	strip = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if manifestVolatile[k] || strings.HasPrefix(k, "ahead_") || strings.HasSuffix(k, "cached") {
					delete(v, k)
					continue
				}
				strip(x)
			}
		case []any:
			for _, x := range v {
				strip(x)
			}
		}
	}
	strip(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// exportAll exports the store of a run in every layout, format and score
// scale the export accepts, adding the hashes under name/<layout>-<format>-<scores>.
func exportAll(t *testing.T, got map[string]string, name, store string) {
	t.Helper()
	for _, layout := range []string{"listwise", "sentence-transformers", "flagembedding", "paper", "tevatron"} {
		formats := []string{"arrow", "parquet", "jsonl"}
		if layout == "flagembedding" || layout == "paper" {
			formats = []string{"jsonl"}
		}
		scores := []string{"raw", "normalised"}
		if layout == "listwise" {
			scores = []string{""}
		}
		for _, f := range formats {
			for _, s := range scores {
				args := []string{"--layout", layout, "--format", f}
				if s != "" {
					args = append(args, "--scores", s)
				}
				hashOut(t, got, fmt.Sprintf("%s/%s-%s-%s", name, layout, f, s), export(t, store, args...))
			}
		}
	}
}

func runOut(t *testing.T, args ...string) string {
	t.Helper()
	out := t.TempDir()
	if code, msg := synthq(t, context.Background(), append([]string{"run", "--out", out, "--quiet"}, args...)...); code != 0 {
		t.Fatalf("run %v: exit %d: %s", args, code, msg)
	}
	return out
}

func TestExportsByteIdentical(t *testing.T) {
	got := map[string]string{}

	// The offline flow on testdata: the run's own export, then every layout.
	out := runOut(t, "--offline", "--corpus", corpus, "--min-candidates", "5")
	hashOut(t, got, "offline", out)
	exportAll(t, got, "offline", filepath.Join(out, "store"))

	// Two shards merged.
	var stores []string
	for _, sh := range []string{"0/2", "1/2"} {
		stores = append(stores, filepath.Join(runOut(t, "--offline", "--corpus", corpus, "--min-candidates", "5", "--shard", sh), "store"))
	}
	merged := t.TempDir()
	if code, msg := synthq(t, context.Background(), append([]string{"export", "--quiet", "--out", merged, "--merge"}, stores...)...); code != 0 {
		t.Fatalf("merge: exit %d: %s", code, msg)
	}
	hashOut(t, got, "merged", merged)

	// The servers' flow (LLM client, teacher client) against the fakes.
	fout := t.TempDir()
	_, _, args := fakeArgs(t, "tei", fout)
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("fake run: exit %d: %s", code, msg)
	}
	hashOut(t, got, "fakes", fout)

	// SciFact, offline, on a sample of its passages.
	sci := filepath.Join("..", "..", "..", "shared", "data", "scifact", "corpus.jsonl")
	if _, err := os.Stat(sci); err != nil {
		t.Logf("SciFact not found at %s (read from ../shared, never copied into the repo): its exports are not checked: %v", sci, err)
	} else {
		sout := runOut(t, "--offline", "--corpus", sci, "--min-candidates", "5", "--max-passages", "300")
		hashOut(t, got, "scifact", sout)
		for _, l := range []string{"flagembedding", "tevatron", "sentence-transformers"} {
			hashOut(t, got, "scifact/"+l, export(t, filepath.Join(sout, "store"), "--layout", l, "--format", "jsonl"))
		}
	}

	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var buf bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&buf, "%s  %s\n", got[k], k)
	}
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenExports, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(goldenExports)
	if err != nil {
		t.Fatalf("%v (write it with go test -run TestExportsByteIdentical -update)", err)
	}
	want := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("%s: bad line %q", goldenExports, line)
		}
		want[name] = sum
	}
	for _, k := range keys {
		w, ok := want[k]
		switch {
		case !ok && strings.HasPrefix(k, "scifact/"):
			t.Errorf("%s: no golden hash (run with -update where SciFact is present)", k)
		case !ok:
			t.Errorf("%s: not in %s (a new output file? rewrite with -update)", k, goldenExports)
		case w != got[k]:
			t.Errorf("%s: sha256 %s, want %s: the export changed", k, got[k], w)
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok && !strings.HasPrefix(k, "scifact/") {
			t.Errorf("%s: in %s but not written any more", k, goldenExports)
		}
	}
}
