package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
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
	// `synthq help CMD` is `synthq CMD --help`.
	for _, cmd := range []string{"run", "stats", "export"} {
		_, viaFlag, _ := cliRun(t, cmd, "--help")
		if code, viaHelp, errs := cliRun(t, "help", cmd); code != 0 || errs != "" || viaHelp != viaFlag {
			t.Errorf("synthq help %s: exit %d, stderr %q, and %d bytes against %d of synthq %s --help", cmd, code, errs, len(viaHelp), len(viaFlag), cmd)
		}
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
		{[]string{"bogus"}, "synthq: unknown command \"bogus\"; the commands are run, prepare, export, stats, inspect, eval, adapt, report, version, help (see synthq --help)\n"},
		{[]string{"exprot", "--store", "x"}, "synthq: unknown command \"exprot\"; did you mean \"export\"? (see synthq --help)\n"},
		{[]string{"help", "bogus"}, "synthq: unknown command \"bogus\"; the commands are run, prepare, export, stats, inspect, eval, adapt, report, version, help (see synthq --help)\n"},
		{[]string{"help", "exprot"}, "synthq: unknown command \"exprot\"; did you mean \"export\"? (see synthq --help)\n"},
		{[]string{"stats"}, "synthq: stats: --store is required (see synthq stats --help)\n"},
		{[]string{"inspect", "--json", "q"}, "synthq: inspect: --store is required (see synthq inspect --help)\n"},
		{[]string{"run", "--corpus"}, "synthq: run: flag needs an argument: --corpus (see synthq run --help)\n"},
		{[]string{"run", "--min-candidates", "x"}, "synthq: run: invalid value \"x\" for flag --min-candidates: parse error (see synthq run --help)\n"},
		{[]string{"--bogus"}, "synthq: unknown flag --bogus (see synthq --help)\n"},
		{[]string{"run"}, "synthq: run: --corpus is required: the JSONL file of passages to write queries for; to try the flow with no server: synthq run --offline --corpus testdata/corpus.jsonl --out out/ --min-candidates 5 (see synthq run --help)\n"},
		{[]string{"run", "--offline", "corpus.jsonl"}, "synthq: run: takes no arguments, got \"corpus.jsonl\" (every setting is a flag) (see synthq run --help)\n"},
		{[]string{"inspect", "--store", "s"}, "synthq: inspect: give one qid, e.g. synthq inspect --store out/store kb001:questions:0, got 0 arguments (see synthq inspect --help)\n"},
		{[]string{"export", "--out", "o"}, "synthq: export: --store is required (or --merge STORE…) (see synthq export --help)\n"},
		{[]string{"export", "--merge", "a/store"}, "synthq: export: --merge: --out is required (see synthq export --help)\n"},
		{[]string{"eval", "--queries", "q", "--qrels", "r"}, "synthq: eval: --corpus is required: the BEIR corpus.jsonl the queries search (see synthq eval --help)\n"},
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

// Item 9 of issue 23: the funnel counts the round trip apart from the
// --min-candidates drop, and inspect of a slot the run never asks says so
// (not "not generated yet").
func TestFunnelAndNotAsked(t *testing.T) {
	_, store := offlineStore(t)
	code, out, errs := cliRun(t, "stats", "--store", store, "--json")
	if code != 0 {
		t.Fatalf("stats: exit %d: %s", code, errs)
	}
	var s struct {
		Funnel []inspect.FunnelStep                         `json:"funnel"`
		Stages map[string]struct{ Counts map[string]int64 } `json:"stages"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	step := map[string]int64{}
	for _, f := range s.Funnel {
		step[f.Step] = f.Count
	}
	mine := s.Stages["mine"].Counts
	if mine["drop_few_candidates"] == 0 {
		t.Fatalf("the testdata run drops no query for too few candidates: %v", mine)
	}
	if got, want := step["through the round trip"], step["unique"]-mine["drop_roundtrip_miss"]; got != want {
		t.Errorf("through the round trip %d, want unique less round-trip misses = %d", got, want)
	}
	if got, want := step["with at least --min-candidates candidates"], step["through the round trip"]-mine["drop_few_candidates"]; got != want || got != mine["kept"] {
		t.Errorf("with at least --min-candidates candidates %d, want %d (mine kept %d)", got, want, mine["kept"])
	}

	for qid, want := range map[string]string{
		"kb001:questions:3": "outcome  not asked by this run: --queries-per-type 1 asks samples 0 to 0 of each passage and type, not 3\n",
		"kb001:bogus:0":     "outcome  not asked by this run: its --query-types are questions,claims,titles,keywords,msmarco,random, not bogus\n",
	} {
		code, out, errs := cliRun(t, "inspect", "--store", store, qid)
		if code != 0 || !strings.Contains(out, want) || strings.Contains(out, "not generated") {
			t.Errorf("inspect %s: exit %d, %s%s; want %q", qid, code, out, errs, want)
		}
	}
}

// Item 9 of issue 23: an export that leaves lists out (shorter than
// --list-size for sentence-transformers) ends its progress at 100% and says
// what it left out and why; export --help says a bare export keeps the
// run's values.
func TestExportProgressAndHelpDefaults(t *testing.T) {
	_, store := offlineStore(t)
	code, _, errs := cliRun(t, "export", "--store", store, "--out", t.TempDir(), "--layout", "sentence-transformers", "--list-size", "8")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	m := regexp.MustCompile(`(?m)^export +(\d+)/(\d+) +([0-9.]+)%`).FindAllStringSubmatch(errs, -1)
	if len(m) == 0 {
		t.Fatalf("no export progress line:\n%s", errs)
	}
	if last := m[len(m)-1]; last[1] != last[2] || last[3] != "100.0" {
		t.Errorf("export progress ends at %s/%s %s%%:\n%s", last[1], last[2], last[3], errs)
	}
	if !regexp.MustCompile(`wrote \d+ train and \d+ dev lists to .*; \d+ lists shorter than --list-size 8 left out \(the sentence-transformers layout needs exactly 8 passages a list\)\n$`).MatchString(errs) {
		t.Errorf("the summary does not say what was left out:\n%s", errs)
	}
	_, help, _ := cliRun(t, "export", "--help")
	for _, want := range []string{"--list-size int             passages per exported list (top by teacher score, source included) (default: the run's value)",
		"--layout string             output layout"} {
		if !strings.Contains(help, want) {
			t.Errorf("export --help lacks %q", want)
		}
	}
	if strings.Contains(help, "(default: 20)") || strings.Contains(help, `(default: "listwise")`) {
		t.Errorf("export --help gives run defaults a bare export does not use:\n%s", help)
	}
}

// Item 9 of issue 23: after a cached re-run, stats and the report keep the
// figures of the run that sent the requests (requests, tokens, time,
// endpoints) beside this run's zeros.
func TestCachedRerunKeepsPaidFigures(t *testing.T) {
	out := t.TempDir()
	llm, _, args := fakeArgs(t, "tei", out)
	for i := 0; i < 2; i++ {
		if code, msg := synthq(t, context.Background(), args...); code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, msg)
		}
	}
	paid := llm.Completed.Load()
	if paid == 0 {
		t.Fatal("the fake LLM got no request")
	}
	store := filepath.Join(out, "store")
	code, stats, errs := cliRun(t, "stats", "--store", store)
	if code != 0 {
		t.Fatalf("stats: exit %d: %s", code, errs)
	}
	if !strings.Contains(stats, "last run: 0 requests") ||
		!regexp.MustCompile(fmt.Sprintf(`last run that sent requests \(.*\): %d requests, \d+ prompt \+ \d+ completion`, paid)).MatchString(stats) {
		t.Errorf("stats after a cached re-run:\n%s", stats)
	}
	if !regexp.MustCompile(`endpoints \(last run that sent requests\)\n.*\n  llm +\S+ +[1-9]`).MatchString(stats) {
		t.Errorf("stats lost the endpoints' figures of the paid run:\n%s", stats)
	}
	page := filepath.Join(t.TempDir(), "r.html")
	if code, _, errs := cliRun(t, "report", "--store", store, "--out", page); code != 0 {
		t.Fatalf("report: exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	for _, want := range []string{`<td>this run's generate</td><td>0 requests`,
		fmt.Sprintf(`<tr data-row="paid-run"><td>last generate run that sent requests</td><td>%d requests`, paid),
		`<tr data-row="paid-stage"><td>generate: last run that sent requests</td>`,
		`<tr data-row="paid-stage"><td>label: last run that sent requests</td>`} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %s", want)
		}
	}
}

// Item 10 of issue 23: interop/package-lock.json lists every optional
// dependency of every locked package (DuckDB's bindings for each platform),
// so `npm ci` accepts it and `npm install` leaves it as it is: the tree stays
// clean after the README's test command.
func TestInteropLockComplete(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "interop", "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Packages map[string]struct {
			Version              string            `json:"version"`
			Dependencies         map[string]string `json:"dependencies"`
			OptionalDependencies map[string]string `json:"optionalDependencies"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatal(err)
	}
	for name, p := range lock.Packages {
		for dep, ver := range p.OptionalDependencies {
			got, ok := lock.Packages["node_modules/"+dep]
			if !ok {
				t.Errorf("%s: optional dependency %s@%s is not in the lock (npm install would add it)", name, dep, ver)
			} else if got.Version != ver && !strings.ContainsAny(ver, "^~<>*") {
				t.Errorf("%s: optional dependency %s locked at %s, wants %s", name, dep, got.Version, ver)
			}
		}
	}
	if len(lock.Packages) < 5 {
		t.Errorf("lock lists %d packages", len(lock.Packages))
	}
}

// Inspect of a passage the run keeps out (--holdout) says so.
func TestInspectHeldOut(t *testing.T) {
	out := t.TempDir()
	if code, msg := synthq(t, context.Background(), "run", "--offline", "--corpus", corpus, "--out", out, "--quiet",
		"--min-candidates", "5", "--holdout", "2"); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Holdout []string `json:"holdout_passages"`
	}
	if err := json.Unmarshal(b, &m); err != nil || len(m.Holdout) != 2 {
		t.Fatalf("manifest holdout_passages %v (%v)", m.Holdout, err)
	}
	code, got, errs := cliRun(t, "inspect", "--store", filepath.Join(out, "store"), m.Holdout[0]+":questions:0")
	if want := "outcome  not asked by this run: the passage is held out (--holdout)\n"; code != 0 || !strings.Contains(got, want) {
		t.Errorf("inspect of a held-out passage: exit %d, %s%s; want %q", code, got, errs, want)
	}
}
