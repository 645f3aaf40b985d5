package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/pipeline"
)

// passageInputs counts the texts a fake embedder served, by whether they
// are passages ("passage: " prefix) or queries.
type passageInputs struct {
	mu       sync.Mutex
	passages map[string]int
	queries  int
}

func (p *passageInputs) served(inputs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, in := range inputs {
		if strings.HasPrefix(in, "passage: ") {
			p.passages[in]++
		} else {
			p.queries++
		}
	}
}

func (p *passageInputs) snapshot() (distinct, total, queries int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range p.passages {
		distinct++
		total += n
	}
	return distinct, total, p.queries
}

// treeDigest is a digest of every file's path, size and bytes under dir.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// The corpus is embedded once by prepare; four shards run at once on the
// prepared folder (read-only, opened by all four together), embed only their
// queries, and their merge is byte-identical to one machine with no
// prepared folder.
func TestPreparedShardsEmbedTheCorpusOnce(t *testing.T) {
	ref := t.TempDir()
	_, _, args := fakeArgs(t, "tei", ref)
	emb := fakes.NewEmbedder("vllm", "e5", 32)
	t.Cleanup(emb.Close)
	seen := &passageInputs{passages: map[string]int{}}
	emb.Served = seen.served
	args = append(args, "--retriever", "bm25,dense", "--embed-url", emb.URL(), "--embed-model", "e5",
		"--query-prefix", "query: ", "--passage-prefix", "passage: ", "--embed-batch", "8")
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("single machine: exit %d: %s", code, msg)
	}
	corpusPassages, total, _ := seen.snapshot()
	if corpusPassages == 0 || total != corpusPassages {
		t.Fatalf("single machine embedded %d distinct passages in %d inputs", corpusPassages, total)
	}

	// prepare: the corpus's passages, each once.
	seen = &passageInputs{passages: map[string]int{}}
	emb.Served = seen.served
	prep := t.TempDir()
	prepArgs := append([]string{"prepare"}, args[1:]...)
	prepArgs = append(prepArgs, "--out", prep)
	if code, msg := synthq(t, context.Background(), prepArgs...); code != 0 {
		t.Fatalf("prepare: exit %d: %s", code, msg)
	}
	if d, n, q := seen.snapshot(); d != corpusPassages || n != corpusPassages || q != 0 {
		t.Fatalf("prepare embedded %d distinct passages in %d inputs and %d queries; want each of %d passages once", d, n, q, corpusPassages)
	}
	// A second prepare finds everything stored.
	if code, msg := synthq(t, context.Background(), prepArgs...); code != 0 {
		t.Fatalf("prepare again: exit %d: %s", code, msg)
	}
	if _, n, _ := seen.snapshot(); n != corpusPassages {
		t.Errorf("a second prepare embedded %d passages again", n-corpusPassages)
	}
	before := treeDigest(t, prep)

	// Four shards, each with its own store, on the one folder.
	var stores []string
	var wg sync.WaitGroup
	errs := make([]string, 4)
	for i := 0; i < 4; i++ {
		out := t.TempDir()
		stores = append(stores, filepath.Join(out, "store"))
		shardArgs := append(append([]string{}, args...), "--out", out, "--shard", fmt.Sprintf("%d/4", i), "--prepared", prep)
		// In turn: urfave/cli's flag values are shared by concurrent
		// in-process runs (TestSlurmJob runs shards as processes at once).
		wg.Add(1)
		func() {
			defer wg.Done()
			if code, msg := synthq(t, context.Background(), shardArgs...); code != 0 {
				errs[i] = fmt.Sprintf("shard %d: exit %d: %s", i, code, msg)
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Fatal(e)
		}
	}
	if _, n, q := seen.snapshot(); n != corpusPassages || q == 0 {
		t.Errorf("the shards embedded %d passages (want none: they read the prepared vectors) and %d queries", n-corpusPassages, q)
	}
	if after := treeDigest(t, prep); after != before {
		t.Errorf("the shards changed the prepared folder")
	}
	// The BM25 index was built once, by prepare: every shard mapped its file.
	if _, err := os.Stat(filepath.Join(prep, "bm25.idx")); err != nil {
		t.Errorf("prepare left no BM25 index: %v", err)
	}
	for i, s := range stores {
		counts := manifestCounts(t, filepath.Dir(s), "mine")
		if counts["bm25_index_built"] != 0 || counts["bm25_index_loaded"] != 1 {
			t.Errorf("shard %d: BM25 index built %d times, loaded %d; want loaded once from the prepared folder, never built",
				i, counts["bm25_index_built"], counts["bm25_index_loaded"])
		}
	}
	// The passage texts file was written once, by prepare: the shards read
	// the prepared folder's and write none of their own.
	if f, _ := filepath.Glob(filepath.Join(prep, "store", "index", "passages-*.txt")); len(f) != 1 {
		t.Errorf("prepared folder's passage texts files: %v, want one", f)
	}
	for i, s := range stores {
		if f, _ := filepath.Glob(filepath.Join(s, "index", "passages-*")); len(f) != 0 {
			t.Errorf("shard %d wrote passage texts files of its own: %v", i, f)
		}
	}
	merged := t.TempDir()
	code, msg := synthq(t, context.Background(), append([]string{"export", "--quiet", "--out", merged, "--merge"}, stores...)...)
	if code != 0 {
		t.Fatalf("merge: exit %d: %s", code, msg)
	}
	sameFiles(t, ref, merged)

	// A shard store refuses to go on as another shard.
	code, msg = synthq(t, context.Background(), append(append([]string{}, args...), "--out", filepath.Dir(stores[2]), "--shard", "0/1", "--prepared", prep)...)
	if code != exitError || !strings.Contains(msg, "was begun as shard 2/4, this run is 0/1") {
		t.Errorf("store of shard 2/4 run as 0/1: exit %d: %s", code, msg)
	}

	// A damaged BM25 index file is refused, naming the file and the fault.
	bad := t.TempDir()
	if err := os.CopyFS(bad, os.DirFS(prep)); err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(bad, "bm25.idx")
	b, err := os.ReadFile(idx)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := os.WriteFile(idx, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, msg = synthq(t, context.Background(), append(append([]string{}, args...), "--out", t.TempDir(), "--shard", "1/4", "--prepared", bad)...)
	if code == 0 || !strings.Contains(msg, idx) || !strings.Contains(msg, "checksum") {
		t.Errorf("a corrupt prepared BM25 index: exit %d: %s", code, msg)
	}
}

// manifestCounts reads one stage's counters from the manifest.json in out.
func manifestCounts(t *testing.T, out, stage string) map[string]int64 {
	t.Helper()
	var m struct {
		Stages map[string]pipeline.StageStats `json:"stages"`
	}
	b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		t.Fatal(err)
	}
	return m.Stages[stage].Counts
}

// A prepared folder made from another corpus or with other settings is
// refused, naming what differs; so are a folder that is not one and an
// unfinished one.
func TestPreparedRefusesOtherSettings(t *testing.T) {
	prep := t.TempDir()
	base := []string{"--offline", "--quiet", "--min-candidates", "5", "--seed", "7"}
	if code, msg := synthq(t, context.Background(), append([]string{"prepare", "--corpus", corpus, "--out", prep}, base...)...); code != 0 {
		t.Fatalf("prepare: exit %d: %s", code, msg)
	}
	other := filepath.Join(t.TempDir(), "other.jsonl")
	if err := os.WriteFile(other, []byte(`{"_id":"x","text":"another corpus"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		extra []string
		want  []string
	}{
		{"another corpus", []string{"--corpus", other}, []string{"--corpus: " + other, "is not the corpus prepared"}},
		{"another dedup", []string{"--dedup", "exact"}, []string{`--dedup: prepared with "near", this run has "exact"`}},
		{"other BM25 parameters", []string{"--bm25-k1", "1.2"}, []string{`--bm25-k1: prepared with "0.9", this run has "1.2"`}},
		{"another seed and sample", []string{"--seed", "8", "--max-passages", "10"},
			[]string{`--seed: prepared with "7", this run has "8"`, `--max-passages: prepared with "0", this run has "10"`}},
		{"a dense model not prepared", []string{"--retriever", "dense", "--embed-url", "http://127.0.0.1:1/v1", "--embed-model", "e5"},
			[]string{"--embed-model e5", "no passage vectors prepared for it (prepared: none)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"run", "--out", t.TempDir(), "--prepared", prep}, base...), tc.extra...)
			code, msg := synthq(t, context.Background(), args...)
			if code != exitError {
				t.Fatalf("exit %d, want %d: %s", code, exitError, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q:\n%s", w, msg)
				}
			}
		})
	}
	// The same settings with no --corpus work, and name the prepared corpus.
	out := t.TempDir()
	if code, msg := synthq(t, context.Background(), append([]string{"run", "--out", out, "--prepared", prep}, base...)...); code != 0 {
		t.Fatalf("run on the prepared corpus: exit %d: %s", code, msg)
	}
	if m := manifestOf(t, out); m.Rows["train"] == 0 {
		t.Errorf("run on the prepared corpus exported no rows")
	}
	code, msg := synthq(t, context.Background(), append([]string{"run", "--out", t.TempDir(), "--prepared", t.TempDir()}, base...)...)
	if code != exitError || !strings.Contains(msg, "not a prepared corpus") {
		t.Errorf("empty folder as --prepared: exit %d: %s", code, msg)
	}
}

// ivfFiles lists the dense index files under dir.
func ivfFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".ivf") {
			out = append(out, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// With an approximate (IVF) index, prepare builds it once into the folder;
// the shards map that file read-only (they build no k-means and write no
// list file of their own) and their merge is byte-identical to one machine
// searching the same index. Shards whose index settings differ from the
// folder's are refused, naming the setting; --dense-probe, a search
// setting, may differ.
func TestPreparedApproxIndexBuiltOnce(t *testing.T) {
	ref := t.TempDir()
	_, _, args := fakeArgs(t, "tei", ref)
	emb := fakes.NewEmbedder("vllm", "e5", 32)
	t.Cleanup(emb.Close)
	args = append(args, "--retriever", "bm25,dense", "--embed-url", emb.URL(), "--embed-model", "e5",
		"--passage-prefix", "passage: ", "--dense-index", "approx", "--dense-lists", "4", "--dense-probe", "2")
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("single machine: exit %d: %s", code, msg)
	}
	if c := manifestOf(t, ref).Stages["mine"].Counts; c["dense_index_built"] != 1 {
		t.Fatalf("single machine: counts %v, want one dense index built", c)
	}

	prep := t.TempDir()
	prepArgs := append(append([]string{"prepare"}, args[1:]...), "--out", prep)
	if code, msg := synthq(t, context.Background(), prepArgs...); code != 0 {
		t.Fatalf("prepare: exit %d: %s", code, msg)
	}
	built := ivfFiles(t, prep)
	if len(built) != 1 {
		t.Fatalf("prepare wrote %d index files, want 1: %v", len(built), built)
	}
	before := treeDigest(t, prep)

	var stores []string
	for i := 0; i < 2; i++ {
		out := t.TempDir()
		stores = append(stores, filepath.Join(out, "store"))
		shardArgs := append(append([]string{}, args...), "--out", out, "--shard", fmt.Sprintf("%d/2", i), "--prepared", prep)
		if code, msg := synthq(t, context.Background(), shardArgs...); code != 0 {
			t.Fatalf("shard %d: exit %d: %s", i, code, msg)
		}
		if f := ivfFiles(t, out); len(f) != 0 {
			t.Errorf("shard %d built its own index: %v", i, f)
		}
		c := manifestOf(t, out).Stages["mine"].Counts
		if c["dense_index_built"] != 0 || c["dense_index_prepared"] != 1 {
			t.Errorf("shard %d: dense_index_built %d, dense_index_prepared %d; want 0 and 1", i, c["dense_index_built"], c["dense_index_prepared"])
		}
		if dix := manifestOf(t, out).DenseIndex; len(dix) != 1 || dix[0].Mode != "approx" || dix[0].Lists != 4 || dix[0].File != built[0] {
			t.Errorf("shard %d: dense index record %+v, want the prepared approx index %s", i, dix, built[0])
		}
	}
	if after := treeDigest(t, prep); after != before {
		t.Errorf("the shards changed the prepared folder")
	}
	merged := t.TempDir()
	if code, msg := synthq(t, context.Background(), append([]string{"export", "--quiet", "--out", merged, "--merge"}, stores...)...); code != 0 {
		t.Fatalf("merge: exit %d: %s", code, msg)
	}
	sameFiles(t, ref, merged)

	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"other lists", []string{"--dense-lists", "8"}, "--dense-lists: the e5 index was prepared with 4 lists, this run has 8"},
		{"exact search", []string{"--dense-index", "exact"}, "--dense-index: the e5 index was prepared approx (IVF, 4 lists), this run searches exact"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shardArgs := append(append(append([]string{}, args...), tc.extra...), "--out", t.TempDir(), "--shard", "0/2", "--prepared", prep)
			code, msg := synthq(t, context.Background(), shardArgs...)
			if code != exitError || !strings.Contains(msg, tc.want) {
				t.Errorf("exit %d, want %d and %q:\n%s", code, exitError, tc.want, msg)
			}
		})
	}
}
