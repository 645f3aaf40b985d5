package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/parquet/file"
)

func readJSONL[T any](t *testing.T, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s line %d: %v", path, len(out)+1, err)
		}
		out = append(out, v)
	}
	return out
}

// offlineStore runs the offline flow once and returns its store directory.
func offlineStore(t *testing.T) (string, string) {
	t.Helper()
	out := t.TempDir()
	if code, msg := synthq(t, context.Background(), "run", "--offline", "--corpus", corpus, "--out", out, "--quiet",
		"--min-candidates", "5", "--min-top-percentile", "10", "--list-size", "6"); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	return out, filepath.Join(out, "store")
}

func export(t *testing.T, store string, args ...string) string {
	t.Helper()
	out := t.TempDir()
	if code, msg := synthq(t, context.Background(), append([]string{"export", "--store", store, "--out", out, "--quiet"}, args...)...); code != 0 {
		t.Fatalf("export %v: exit %d: %s", args, code, msg)
	}
	return out
}

// Every layout holds the same lists as the listwise Arrow file, shaped as
// its trainer reads them (the per-consumer checks are in
// export_layouts_test.go).
func TestExportLayouts(t *testing.T) {
	run, store := offlineStore(t)
	train, dev := checkOutput(t, run)
	want := map[string][]row{"train": train, "dev": dev}
	full := map[string][]row{} // lists of the full list size (the sentence-transformers rows)
	for split, rows := range want {
		for _, r := range rows {
			if len(r.DocIDs) == 6 {
				full[split] = append(full[split], r)
			}
		}
	}
	if len(full["train"]) == 0 || len(full["train"]) == len(train) {
		t.Fatalf("test data should have both full (%d) and short lists (%d train rows)", len(full["train"]), len(train))
	}

	t.Run("listwise jsonl", func(t *testing.T) {
		out := export(t, store, "--format", "arrow,parquet,jsonl")
		for split, rows := range want {
			js := readJSONL[map[string]any](t, filepath.Join(out, split+".jsonl"))
			if len(js) != len(rows) {
				t.Fatalf("%s.jsonl: %d rows, arrow %d", split, len(js), len(rows))
			}
			for i, r := range rows {
				b, _ := json.Marshal(js[i])
				var got struct {
					QID, Query, Split string
					Texts             []string  `json:"texts"`
					Scores            []float32 `json:"teacher_scores"`
					Raw               []float32 `json:"teacher_raw"`
					Ranks             []int32   `json:"retriever_ranks"`
				}
				json.Unmarshal(b, &got)
				if got.QID != r.QID || got.Query != r.Query || !slices.Equal(got.Texts, r.Texts) || !slices.Equal(got.Scores, r.Scores) ||
					!slices.Equal(got.Raw, r.Raw) || !slices.Equal(got.Ranks, r.Ranks) {
					t.Fatalf("%s.jsonl row %d differs from arrow: %+v vs %+v", split, i, got, r)
				}
			}
			if len(js) > 0 && len(js[0]) != len(wantColumns) {
				t.Errorf("jsonl keys %v, want the %d listwise columns", js[0], len(wantColumns))
			}
		}
	})

	t.Run("sentence-transformers", func(t *testing.T) {
		out := export(t, store, "--layout", "sentence-transformers", "--format", "arrow,parquet,jsonl")
		cols := []string{"query", "positive", "negative_1", "negative_2", "negative_3", "negative_4", "negative_5", "label"}
		for split, rows := range full {
			schema, recs := readArrowRecords(t, filepath.Join(out, split+".arrow"))
			var names []string
			for _, f := range schema.Fields() {
				names = append(names, f.Name)
			}
			if !slices.Equal(names, cols) {
				t.Fatalf("columns %v, want %v", names, cols)
			}
			if v, _ := schema.Metadata().GetValue("layout"); v != "sentence-transformers" {
				t.Errorf("layout metadata %q", v)
			}
			if len(recs) != len(rows) {
				t.Fatalf("%s: %d rows, want the %d full lists", split, len(recs), len(rows))
			}
			js := readJSONL[map[string]any](t, filepath.Join(out, split+".jsonl"))
			for i, r := range rows {
				got := recs[i]
				if got.strs[0] != r.Query || got.strs[1] != r.Texts[0] || !slices.Equal(got.strs[2:], r.Texts[1:]) || !slices.Equal(got.label, r.Scores) {
					t.Fatalf("%s row %d: %+v, want query %q, positive %q, label %v", split, i, got, r.Query, r.Texts[0], r.Scores)
				}
				if js[i]["positive"] != r.Texts[0] || js[i]["negative_5"] != r.Texts[5] {
					t.Fatalf("%s.jsonl row %d differs", split, i)
				}
			}
			if pq := countParquet(t, filepath.Join(out, split+".parquet")); pq != len(rows) {
				t.Errorf("%s.parquet: %d rows", split, pq)
			}
		}
		m := manifestOf(t, out)
		if m.Stages["export"].Counts["drop_shorter_than_list_size"] != int64(len(train)+len(dev)-len(full["train"])-len(full["dev"])) {
			t.Errorf("drop count %d", m.Stages["export"].Counts["drop_shorter_than_list_size"])
		}
	})

	t.Run("same store, same bytes", func(t *testing.T) {
		for _, layout := range []string{"listwise", "paper", "flagembedding", "tevatron", "sentence-transformers"} {
			a := export(t, store, "--layout", layout, "--format", "jsonl")
			b := export(t, store, "--layout", layout, "--format", "jsonl")
			for _, f := range []string{"train.jsonl", "train/train.jsonl", "README.md"} {
				pa := filepath.Join(a, filepath.FromSlash(f))
				if _, err := os.Stat(pa); err != nil {
					continue
				}
				if readFile(t, pa) != readFile(t, filepath.Join(b, filepath.FromSlash(f))) {
					t.Errorf("%s: two exports differ in %s", layout, f)
				}
			}
		}
	})

	t.Run("bad combinations", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--layout", "paper", "--format", "arrow"}, "--layout paper is written as [jsonl] only"},
			{[]string{"--layout", "flagembedding", "--format", "parquet"}, "--layout flagembedding is written as [jsonl] only"},
			{[]string{"--layout", "listwise", "--scores", "raw"}, "--scores: the listwise layout carries both"},
			{[]string{"--layout", "tevatron", "--scores", "logits"}, `--scores must be raw or normalised, got "logits"`},
			{[]string{"--layout", "pairs"}, "--layout must be one of"},
			{[]string{"--format", "csv"}, `unknown format "csv"`},
		} {
			code, msg := synthq(t, context.Background(), append([]string{"export", "--store", store, "--out", t.TempDir(), "--quiet"}, tc.args...)...)
			if code != exitError || !strings.Contains(msg, tc.want) {
				t.Errorf("%v: exit %d: %s", tc.args, code, msg)
			}
		}
	})
}

func countParquet(t *testing.T, path string) int {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	return int(pf.NumRows())
}

type stRow struct {
	strs  []string
	label []float32
}

func readArrowRecords(t *testing.T, path string) (*arrow.Schema, []stRow) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := ipc.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Release()
	var out []stRow
	for rd.Next() {
		rec := rd.Record()
		n := int(rec.NumCols())
		for i := 0; i < int(rec.NumRows()); i++ {
			var r stRow
			for c := 0; c < n-1; c++ {
				r.strs = append(r.strs, rec.Column(c).(*array.String).Value(i))
			}
			l := rec.Column(n - 1).(*array.List)
			lo, hi := l.ValueOffsets(i)
			for j := lo; j < hi; j++ {
				r.label = append(r.label, l.ListValues().(*array.Float32).Value(int(j)))
			}
			out = append(out, r)
		}
	}
	return rd.Schema(), out
}

// Independent readers agree with what synthq wrote: apache-arrow (reading
// each .arrow file as an IPC stream) and DuckDB (each .parquet), from npm,
// installed by .ci/run into interop/node_modules. Skips without them, unless
// SYNTHQ_INTEROP=1 (CI), where their absence fails.
func TestInteropWithNodeReaders(t *testing.T) {
	dir := filepath.Join("..", "..", "interop")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "apache-arrow")); err != nil {
		if os.Getenv("SYNTHQ_INTEROP") == "1" {
			t.Fatalf("SYNTHQ_INTEROP=1 but interop/node_modules is missing: run npm ci in interop/")
		}
		t.Skip("interop readers not installed: (cd interop && npm ci) to run this test")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("interop/node_modules exists but node is not on PATH")
	}
	_, store := offlineStore(t)
	type entry struct {
		Path     string            `json:"path"`
		Format   string            `json:"format"`
		Columns  []string          `json:"columns"`
		Rows     int               `json:"rows"`
		Lists    map[string][2]int `json:"lists"`
		Metadata map[string]string `json:"metadata,omitempty"`
	}
	var want []entry
	// Every Arrow/Parquet layout; the list lengths each reader must see
	// come from the listwise rows (tevatron keeps every list; the
	// sentence-transformers label has exactly --list-size scores).
	_, lw := readArrow(t, filepath.Join(export(t, store), "train.arrow"))
	lo, hi := 1<<30, 0
	for _, r := range lw {
		lo, hi = min(lo, len(r.DocIDs)), max(hi, len(r.DocIDs))
	}
	for _, layout := range []string{"listwise", "sentence-transformers", "tevatron"} {
		out := export(t, store, "--layout", layout, "--format", "arrow,parquet")
		m := manifestOf(t, out)
		for _, split := range []string{"train", "dev"} {
			f, err := os.Open(filepath.Join(out, split+".arrow"))
			if err != nil {
				t.Fatal(err)
			}
			rd, err := ipc.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			var cols []string
			for _, fl := range rd.Schema().Fields() {
				cols = append(cols, fl.Name)
			}
			n := 0
			for rd.Next() {
				n += int(rd.Record().NumRows())
			}
			rd.Release()
			f.Close()
			if int64(n) != m.Rows[split] {
				t.Fatalf("%s %s: %d rows read back, manifest says %d", layout, split, n, m.Rows[split])
			}
			lists := map[string][2]int{}
			switch {
			case split == "dev":
				// the train split carries the length checks
			case layout == "listwise":
				for _, c := range cols[5:] {
					lists[c] = [2]int{lo, hi}
				}
			case layout == "sentence-transformers":
				lists["label"] = [2]int{6, 6}
			case layout == "tevatron":
				lists["positive_passages"] = [2]int{1, 1}
				lists["negative_passages"] = [2]int{lo - 1, hi - 1}
			}
			md := map[string]string{"layout": layout, "synthq_version": m.SynthqVersion, "config_fingerprint": m.Fingerprint}
			for _, format := range []string{"arrow", "parquet"} {
				abs, _ := filepath.Abs(filepath.Join(out, split+"."+format))
				e := entry{Path: abs, Format: format, Columns: cols, Rows: n, Lists: lists}
				if format == "arrow" {
					e.Metadata = md
				}
				want = append(want, e)
			}
		}
	}
	// The check must be able to fail: a wrong row count is reported.
	bad := append([]entry(nil), want[0])
	bad[0].Rows++
	for name, list := range map[string][]entry{"expected.json": want, "wrong.json": bad} {
		b, _ := json.Marshal(list)
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, b, 0o644)
		cmd := exec.Command(node, "check.mjs", p)
		cmd.Dir = dir
		outb, err := cmd.CombinedOutput()
		switch {
		case name == "expected.json" && err != nil:
			t.Errorf("independent readers disagree with synthq:\n%s", outb)
		case name == "wrong.json" && (err == nil || !strings.Contains(string(outb), fmt.Sprintf("apache-arrow reads %d rows, synthq wrote %d", want[0].Rows, want[0].Rows+1))):
			t.Errorf("a wrong expectation was not caught: %v\n%s", err, outb)
		default:
			t.Logf("%s: %s", name, strings.TrimSpace(string(outb)))
		}
	}
}
