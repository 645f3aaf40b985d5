package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// treeSums is the sha256 of every file under dir (not following links),
// by path relative to dir.
func treeSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			got[rel] = "link:" + target
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := sha256.Sum256(b)
		got[rel] = hex.EncodeToString(s[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func sameTree(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for name, sum := range want {
		if got[name] != sum {
			t.Errorf("%s: %s changed or went", what, name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: %s appeared", what, name)
		}
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// An --out folder holding files synthq did not write is refused before
// any work (no server called, no store made), naming them; --force writes
// beside them, replacing only the names it writes; synthq's own earlier
// output is updated without --force. Same for export and report.
func TestOutRefusesForeignFiles(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	d := t.TempDir()
	writeFile(t, filepath.Join(d, "README.md"), "mine\n")
	writeFile(t, filepath.Join(d, "train.parquet"), "my parquet\n")
	writeFile(t, filepath.Join(d, "notes", "todo.txt"), "mine too\n")
	before := treeSums(t, d)

	code, msg := synthq(t, context.Background(), "run", "--corpus", corpus, "--out", d, "--quiet", "--min-candidates", "5",
		"--llm-url", srv.URL+"/v1", "--teacher-url", srv.URL)
	if code != exitError || !strings.Contains(msg, filepath.Join(d, "README.md")) || !strings.Contains(msg, filepath.Join(d, "train.parquet")) ||
		!strings.Contains(msg, filepath.Join(d, "notes", "todo.txt")) || !strings.Contains(msg, "--force") {
		t.Fatalf("run into a folder of the user's: exit %d: %s\nwant 1 naming the files and --force", code, msg)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the refused run sent %d requests", n)
	}
	sameTree(t, "refused run", treeSums(t, d), before)

	// --force: the card and train.parquet (names synthq writes) are
	// replaced, the user's other files stay.
	if code, msg := synthq(t, context.Background(), "run", "--offline", "--corpus", corpus, "--out", d, "--quiet", "--min-candidates", "5", "--force"); code != 0 {
		t.Fatalf("run --force: exit %d: %s", code, msg)
	}
	if got := readFile(t, filepath.Join(d, "notes", "todo.txt")); got != "mine too\n" {
		t.Errorf("--force changed the user's notes/todo.txt: %q", got)
	}
	if got := readFile(t, filepath.Join(d, "README.md")); !strings.HasPrefix(got, "---\n") {
		t.Errorf("--force did not write the card: %q", got)
	}

	// synthq's own output is updated as before, with no --force.
	own := t.TempDir()
	for i := 0; i < 2; i++ {
		if code, msg := synthq(t, context.Background(), "run", "--offline", "--corpus", corpus, "--out", own, "--quiet", "--min-candidates", "5", "--report"); code != 0 {
			t.Fatalf("run %d into synthq's own output: exit %d: %s", i+1, code, msg)
		}
	}
	store := filepath.Join(own, "store")
	if code, msg := synthq(t, context.Background(), "export", "--store", store, "--out", own, "--quiet", "--format", "jsonl"); code != 0 {
		t.Fatalf("export into the run's own output: exit %d: %s", code, msg)
	}

	// export and report: the same rule.
	mine := t.TempDir()
	writeFile(t, filepath.Join(mine, "train.jsonl"), "my data\n")
	before = treeSums(t, mine)
	code, msg = synthq(t, context.Background(), "export", "--store", store, "--out", mine, "--quiet", "--format", "jsonl")
	if code != exitError || !strings.Contains(msg, filepath.Join(mine, "train.jsonl")) {
		t.Fatalf("export into a folder of the user's: exit %d: %s", code, msg)
	}
	sameTree(t, "refused export", treeSums(t, mine), before)
	page := filepath.Join(mine, "page.html")
	writeFile(t, page, "<p>my page</p>")
	code, msg = synthq(t, context.Background(), "report", "--store", store, "--out", page)
	if code != exitError || !strings.Contains(msg, page) || readFile(t, page) != "<p>my page</p>" {
		t.Fatalf("report over a page of the user's: exit %d: %s", code, msg)
	}
	if code, msg := synthq(t, context.Background(), "report", "--store", store, "--out", page, "--force"); code != 0 || !strings.Contains(readFile(t, page), "synthq") {
		t.Fatalf("report --force: exit %d: %s", code, msg)
	}
	// A report synthq wrote is replaced without --force.
	if code, msg := synthq(t, context.Background(), "report", "--store", store, "--out", page); code != 0 {
		t.Fatalf("report over synthq's own report: exit %d: %s", code, msg)
	}
}

// An export deletes and replaces only files its own earlier manifest
// lists: with --force beside the user's train.jsonl, dev.jsonl and
// train/train.parquet, an Arrow export leaves them as they were.
func TestExportDeletesOnlyItsOwnFiles(t *testing.T) {
	_, store := offlineStore(t)
	out := t.TempDir()
	writeFile(t, filepath.Join(out, "train.jsonl"), "my train\n")
	writeFile(t, filepath.Join(out, "dev.jsonl"), "my dev\n")
	writeFile(t, filepath.Join(out, "train", "train.parquet"), "my parquet\n")
	user := treeSums(t, out)
	for _, format := range []string{"arrow", "parquet", "arrow"} {
		if code, msg := synthq(t, context.Background(), "export", "--store", store, "--out", out, "--quiet", "--format", format, "--force"); code != 0 {
			t.Fatalf("export --format %s: exit %d: %s", format, code, msg)
		}
		got := treeSums(t, out)
		for name, sum := range user {
			if got[name] != sum {
				t.Errorf("export --format %s changed or removed the user's %s", format, name)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(out, "train.parquet")); err == nil {
		t.Error("train.parquet of the Parquet export (listed in its manifest) was not removed by the Arrow export")
	}
}

// Read-only commands never create a store: a missing one is an error
// naming the path (and the likely store when given a run's OUT); export
// from a mistyped store creates nothing; a missing corpus leaves no OUT/store.
func TestReadOnlyCommandsCreateNoStore(t *testing.T) {
	out, _ := offlineStore(t)
	dir := t.TempDir()
	nope := filepath.Join(dir, "nope", "store")
	for _, args := range [][]string{
		{"stats", "--store", nope},
		{"inspect", "--store", nope, "kb001:questions:0"},
		{"report", "--store", nope, "--out", filepath.Join(dir, "r.html")},
		{"export", "--store", nope, "--out", filepath.Join(dir, "x")},
		{"export", "--merge", "--out", filepath.Join(dir, "x"), nope},
	} {
		code, msg := synthq(t, context.Background(), args...)
		if code != exitError || !strings.Contains(msg, nope) || !strings.Contains(msg, "no store") {
			t.Errorf("%v: exit %d: %s\nwant 1 naming %s", args, code, msg, nope)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("%v created %v", args, entries)
		}
	}
	code, msg := synthq(t, context.Background(), "stats", "--store", out)
	if code != exitError || !strings.Contains(msg, "did you mean --store "+filepath.Join(out, "store")) {
		t.Errorf("stats --store OUT: exit %d: %s\nwant a pointer to OUT/store", code, msg)
	}
	newOut := filepath.Join(dir, "out")
	code, msg = synthq(t, context.Background(), "run", "--offline", "--corpus", filepath.Join(dir, "missing.jsonl"), "--out", newOut, "--quiet")
	if code != exitError || !strings.Contains(msg, "missing.jsonl") {
		t.Errorf("run with a missing corpus: exit %d: %s", code, msg)
	}
	if _, err := os.Stat(newOut); err == nil {
		t.Errorf("a run with a missing corpus created %s", newOut)
	}
}

// stats, inspect and report read a store without changing a byte of it
// (no garbage collection, no compaction, no lock file written), and two
// of them may read it at once.
func TestReadOnlyCommandsChangeNoByte(t *testing.T) {
	_, store := offlineStore(t)
	before := treeSums(t, store)
	for _, args := range [][]string{
		{"stats", "--store", store},
		{"stats", "--store", store, "--json"},
		{"inspect", "--store", store, "doc1:questions:0"},
		{"report", "--store", store, "--out", filepath.Join(t.TempDir(), "r.html")},
	} {
		code, msg := synthq(t, context.Background(), args...)
		if code != 0 && !(args[0] == "inspect" && code == exitError) {
			t.Fatalf("%v: exit %d: %s", args, code, msg)
		}
		sameTree(t, strings.Join(args[:1], " "), treeSums(t, store), before)
	}
}

// A store whose MANIFEST is cut short is refused with an error naming it,
// and no file of it changes (Badger's own open would delete every table
// the MANIFEST no longer lists and read the store as empty).
func TestDamagedStoreRefusedUntouched(t *testing.T) {
	_, store := offlineStore(t)
	if err := os.Truncate(filepath.Join(store, "MANIFEST"), 20); err != nil {
		t.Fatal(err)
	}
	before := treeSums(t, store)
	for _, args := range [][]string{
		{"stats", "--store", store},
		{"inspect", "--store", store, "doc1:questions:0"},
		{"report", "--store", store, "--out", filepath.Join(t.TempDir(), "r.html")},
		{"export", "--store", store, "--out", t.TempDir()},
	} {
		code, msg := synthq(t, context.Background(), args...)
		if code != exitError || !strings.Contains(msg, store) || !strings.Contains(msg, "damaged") {
			t.Errorf("%v on a damaged store: exit %d: %s\nwant 1 naming the store as damaged", args, code, msg)
		}
		sameTree(t, args[0]+" on a damaged store", treeSums(t, store), before)
	}
}

// No path under OUT is followed through a link: OUT/train -> elsewhere,
// a README.md link and a planted report temporary file leave their
// targets untouched (--force or not), and the error names the link.
func TestNoLinkFollowedUnderOut(t *testing.T) {
	_, store := offlineStore(t)
	elsewhere := t.TempDir()
	writeFile(t, filepath.Join(elsewhere, "keep.md"), "keep\n")
	before := treeSums(t, elsewhere)

	out := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(out, "train")); err != nil {
		t.Fatal(err)
	}
	code, msg := synthq(t, context.Background(), "export", "--store", store, "--out", out, "--quiet", "--layout", "flagembedding", "--force")
	if code != exitError || !strings.Contains(msg, filepath.Join(out, "train")) || !strings.Contains(msg, "symbolic link") {
		t.Errorf("export with OUT/train a link: exit %d: %s", code, msg)
	}
	sameTree(t, "OUT/train -> elsewhere", treeSums(t, elsewhere), before)

	out2 := t.TempDir()
	if err := os.Symlink(filepath.Join(elsewhere, "keep.md"), filepath.Join(out2, "README.md")); err != nil {
		t.Fatal(err)
	}
	code, msg = synthq(t, context.Background(), "export", "--store", store, "--out", out2, "--quiet", "--force")
	if code != exitError || !strings.Contains(msg, filepath.Join(out2, "README.md")) {
		t.Errorf("export with OUT/README.md a link: exit %d: %s", code, msg)
	}
	sameTree(t, "OUT/README.md -> elsewhere/keep.md", treeSums(t, elsewhere), before)

	// report: a planted temporary-file link and a report.html link.
	out3 := t.TempDir()
	if err := os.Symlink(filepath.Join(elsewhere, "keep.md"), filepath.Join(out3, ".report.html.tmp")); err != nil {
		t.Fatal(err)
	}
	if code, msg := synthq(t, context.Background(), "report", "--store", store, "--out", filepath.Join(out3, "report.html")); code != 0 {
		t.Fatalf("report: exit %d: %s", code, msg)
	}
	sameTree(t, "planted .report.html.tmp", treeSums(t, elsewhere), before)
	if err := os.Remove(filepath.Join(out3, "report.html")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(elsewhere, "keep.md"), filepath.Join(out3, "report.html")); err != nil {
		t.Fatal(err)
	}
	code, msg = synthq(t, context.Background(), "report", "--store", store, "--out", filepath.Join(out3, "report.html"), "--force")
	if code != exitError || !strings.Contains(msg, "symbolic link") {
		t.Errorf("report onto a link: exit %d: %s", code, msg)
	}
	sameTree(t, "report.html -> elsewhere/keep.md", treeSums(t, elsewhere), before)
}

// A staging folder a killed export left behind (synthq's marker in it) is
// removed by the next export; one without the marker is not synthq's and
// is neither removed nor written into.
func TestStaleStagingFolder(t *testing.T) {
	_, store := offlineStore(t)
	out := t.TempDir()
	stage := filepath.Join(out, ".synthq-export.tmp")
	writeFile(t, filepath.Join(stage, ".synthq-staging"), "synthq export staging folder\n")
	writeFile(t, filepath.Join(stage, "train.arrow"), strings.Repeat("x", 1<<16))
	if code, msg := synthq(t, context.Background(), "export", "--store", store, "--out", out, "--quiet"); code != 0 {
		t.Fatalf("export after a killed one: exit %d: %s", code, msg)
	}
	if _, err := os.Stat(stage); err == nil {
		t.Errorf("the killed export's staging folder is still there")
	}

	out2 := t.TempDir()
	stage2 := filepath.Join(out2, ".synthq-export.tmp")
	writeFile(t, filepath.Join(stage2, "mine.txt"), "mine\n")
	before := treeSums(t, out2)
	code, msg := synthq(t, context.Background(), "export", "--store", store, "--out", out2, "--quiet", "--force")
	if code != exitError || !strings.Contains(msg, stage2) {
		t.Errorf("export beside a foreign %s: exit %d: %s", stage2, code, msg)
	}
	sameTree(t, "foreign staging folder", treeSums(t, out2), before)
}

// stats' funnel "exported" and export counts are those of the folder it is
// asked about (default: the run's own OUT), not of the last export
// anywhere, and it says which folder.
func TestStatsExportedIsPerFolder(t *testing.T) {
	out, store := offlineStore(t)
	m := manifestOf(t, out)
	runRows := m.Rows["train"] + m.Rows["dev"]
	paper := export(t, store, "--layout", "paper")
	pm := manifestOf(t, paper)
	paperRows := pm.Rows["train"] + pm.Rows["dev"]
	if runRows == paperRows {
		t.Fatalf("the paper export has as many lists as the run's (%d): the test cannot tell them apart", runRows)
	}
	exported := func(args ...string) (int64, string) {
		t.Helper()
		code, msg := synthq(t, context.Background(), append([]string{"stats", "--store", store, "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("stats %v: exit %d: %s", args, code, msg)
		}
		var got struct {
			Funnel []struct {
				Step  string
				Count int64
			} `json:"funnel"`
			ExportedTo struct {
				Out string `json:"out"`
			} `json:"exported_to"`
		}
		if err := json.Unmarshal([]byte(msg), &got); err != nil {
			t.Fatalf("stats %v: %v\n%s", args, err, msg)
		}
		for _, s := range got.Funnel {
			if s.Step == "exported" {
				return s.Count, got.ExportedTo.Out
			}
		}
		t.Fatalf("stats %v: no exported step", args)
		return 0, ""
	}
	if n, folder := exported(); n != runRows || folder != out {
		t.Errorf("stats: exported %d to %q, want the run's %d to %q (the paper export has %d)", n, folder, runRows, out, paperRows)
	}
	if n, folder := exported("--out", paper); n != paperRows || folder != paper {
		t.Errorf("stats --out paper: exported %d to %q, want %d to %q", n, folder, paperRows, paper)
	}
	if n, _ := exported("--out", t.TempDir()); n != 0 {
		t.Errorf("stats --out a folder never exported to: exported %d", n)
	}
	code, msg := synthq(t, context.Background(), "stats", "--store", store)
	if code != 0 || !strings.Contains(msg, "exported  counts of the last export to "+out) || !strings.Contains(msg, "also exported to "+paper) {
		t.Errorf("stats: exit %d, does not say which folder:\n%s", code, msg)
	}
}
