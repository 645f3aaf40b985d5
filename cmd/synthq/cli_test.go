package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/synthq/synthq/inspect"
	"github.com/synthq/synthq/stages"
)

// cliRun runs synthq and returns its exit status, stdout and stderr apart.
func cliRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(context.Background(), append([]string{"synthq"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// golden compares got with testdata/name, rewritten by -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to write it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from testdata/%s (go test -run %s -update rewrites it after review):\n%s", t.Name(), name, t.Name(), got)
	}
}

// Item 7 of issue 23: `synthq <command> --help` groups the flags by concern
// (corpus and out first, required ones marked) instead of ~90 in one list,
// and no usage text is garbled into a placeholder.
func TestHelpGolden(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"export", "--help"}, {"inspect", "--help"}} {
		code, out, errs := cliRun(t, args...)
		if code != 0 || errs != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errs)
		}
		golden(t, "help-"+strings.Join(append([]string{"synthq"}, args[:len(args)-1]...), "-")+".txt", out)
	}
	_, out, _ := cliRun(t, "run", "--help")
	options := out[strings.Index(out, "OPTIONS:"):]
	first := strings.Index(options, "\n   --")
	if !strings.HasPrefix(options[first:], "\n   --corpus string       (required)") {
		t.Errorf("run --help: --corpus is not the first flag, marked required:\n%s", options[:first+80])
	}
	if i := strings.Index(options, "--out string"); i < 0 || i > first+200 {
		t.Errorf("run --help: --out is not second")
	}
	for _, want := range []string{"(required unless --offline)", "--shard string           i/N:", "--grace duration              at SIGINT/SIGTERM, how long requests in flight may take to answer (answers are stored); a second signal abandons them (default: 30s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("run --help lacks %q", want)
		}
	}
}

// Every flag of every command has a category from flagGroups, and no usage
// holds a backtick (urfave/cli takes `text` in a usage as the value's name:
// that garbled --shard's line into "--shard synthq export --merge").
func TestEveryFlagHasACategory(t *testing.T) {
	app := newApp(&bytes.Buffer{}, &bytes.Buffer{})
	for _, cmd := range app.Commands {
		var groups []string
		for _, g := range flagGroups(cmd.Name) {
			groups = append(groups, g.name)
		}
		for _, f := range cmd.Flags {
			d := docOf(f)
			if strings.Contains(d.usage, "`") {
				t.Errorf("%s --%s: backtick in the usage garbles the help: %q", cmd.Name, d.names[0], d.usage)
			}
			if !slices.Contains(groups, d.category) {
				t.Errorf("%s --%s: category %q: add the flag to a group of flagGroups (help.go)", cmd.Name, d.names[0], d.category)
			}
		}
	}
}

// Items 6, 7 and 10 of issue 23: a mistyped flag or command, or a missing
// required flag, is one line naming the closest one (or what to give) and
// pointing at --help, exit 2 (not ~100 lines of help).
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--offline", "--min-candidate", "5"}, "synthq: run: unknown flag --min-candidate; did you mean --min-candidates? (see synthq run --help)\n"},
		{[]string{"export", "--stor", "x"}, "synthq: export: unknown flag --stor; did you mean --store? (see synthq export --help)\n"},
		{[]string{"bogus"}, "synthq: unknown command \"bogus\"; the commands are run, export, stats, inspect, eval, report, version, help (see synthq --help)\n"},
		{[]string{"exprot", "--store", "x"}, "synthq: unknown command \"exprot\"; did you mean \"export\"? (see synthq --help)\n"},
		{[]string{"stats"}, "synthq: stats: --store is required (see synthq stats --help)\n"},
		{[]string{"inspect", "--json", "q"}, "synthq: inspect: --store is required (see synthq inspect --help)\n"},
		{[]string{"run", "--corpus"}, "synthq: run: flag needs an argument: --corpus (see synthq run --help)\n"},
		{[]string{"run", "--min-candidates", "x"}, "synthq: run: invalid value \"x\" for flag --min-candidates: parse error (see synthq run --help)\n"},
		{[]string{"--bogus"}, "synthq: unknown flag --bogus (see synthq --help)\n"},
		{[]string{"run"}, "synthq: run: --corpus is required: the JSONL file of passages to write queries for; to try the flow with no server: synthq run --offline --corpus testdata/corpus.jsonl --out out/ --min-candidates 5 (see synthq run --help)\n"},
		{[]string{"run", "--offline", "corpus.jsonl"}, "synthq: run: takes no arguments, got \"corpus.jsonl\" (every setting is a flag) (see synthq run --help)\n"},
		{[]string{"version", "x"}, "synthq: version: takes no arguments, got \"x\" (see synthq version --help)\n"},
	}
	for _, tc := range cases {
		code, out, errs := cliRun(t, tc.args...)
		if code != exitUsage || out != "" || errs != tc.want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errs, tc.want)
		}
	}
}

// `synthq version`, `--version` and `-v` print the version line.
func TestVersion(t *testing.T) {
	var first string
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		code, out, errs := cliRun(t, args...)
		if code != 0 || errs != "" || !strings.HasPrefix(out, "synthq "+stages.Version+" (") || strings.Count(out, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
		if first == "" {
			first = out
		} else if out != first {
			t.Errorf("%v: %q, want %q as for version", args, out, first)
		}
	}
}

// Item 2 of issue 23: flags may follow the arguments, as the README writes
// them; what follows "--" stays an argument.
func TestInterleave(t *testing.T) {
	cmds := newApp(&bytes.Buffer{}, &bytes.Buffer{}).Commands
	cases := []struct{ in, want string }{
		{"inspect --store s q1 --json", "inspect --store s --json q1"},
		{"inspect q1 --store s --json", "inspect --store s --json q1"},
		{"inspect q1 --store=s", "inspect --store=s q1"},
		{"export --merge a b --out m --list-size 5", "export --merge --out m --list-size 5 a b"},
		{"export --out m --merge -- a -b", "export --out m --merge -- a -b"},
		{"--help run x", "--help run x"},
		{"run --corpus c.jsonl --offline", "run --corpus c.jsonl --offline"},
		{"nosuch a --b", "nosuch a --b"},
	}
	for _, tc := range cases {
		got := strings.Join(interleave(cmds, append([]string{"synthq"}, strings.Fields(tc.in)...))[1:], " ")
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The README's inspect form, flags after the qid, works.
func TestInspectFlagsAfterQID(t *testing.T) {
	_, store := offlineStore(t)
	code, out, errs := cliRun(t, "inspect", "--store", store, "kb001:questions:0", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var s inspect.Story
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.QID != "kb001:questions:0" {
		t.Fatalf("not the story of kb001:questions:0 as JSON (%v): %s", err, out)
	}
}

// Item 8 of issue 23: the manifest and the report show settings a person
// reads (durations as Go durations, concurrency "auto"), an offline run
// names no LLM or teacher model, and paths are clean (no out//store).
func TestReadableSettings(t *testing.T) {
	dir := t.TempDir()
	out := dir + "/out/"
	if code, msg := synthq(t, context.Background(), "run", "--offline", "--corpus", corpus, "--out", out, "--quiet",
		"--min-candidates", "5", "--report"); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"grace": "30s", "max_outage": "30m0s", "request_timeout": "1m0s", "concurrency": "auto",
		"out": filepath.Join(dir, "out"), "store": filepath.Join(dir, "out", "store"), "teacher_api": "lexical"}
	for k, v := range want {
		if m.Config[k] != v {
			t.Errorf("manifest config %s = %v, want %v", k, m.Config[k], v)
		}
	}
	for _, k := range []string{"llm_model", "teacher_model", "llm_urls", "teacher_urls"} {
		if v, ok := m.Config[k]; ok {
			t.Errorf("offline manifest lists %s = %v", k, v)
		}
	}
	page, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<td>grace</td><td class=\"mono\">30s</td>", "<td>concurrency</td><td class=\"mono\">auto</td>"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report settings lack %s", want)
		}
	}
	for _, no := range []string{"30000000000", "Llama-3.1", "bge-reranker", "//store"} {
		if strings.Contains(string(page), no) {
			t.Errorf("report shows %q", no)
		}
	}
}
