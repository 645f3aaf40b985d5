package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/synthq/synthq/pipeline"
)

// parseRun parses `synthq run args…` as the run command does, up to the
// Config, without running anything.
func parseRun(t *testing.T, args ...string) (*pipeline.Config, error) {
	t.Helper()
	flags := runFlags()
	var cfg *pipeline.Config
	app := &cli.App{Name: "synthq", Writer: &bytes.Buffer{}, ErrWriter: &bytes.Buffer{}, ExitErrHandler: func(*cli.Context, error) {},
		DisableSliceFlagSeparator: true,
		Commands: []*cli.Command{{Name: "run", Flags: flags, Before: configSource(flags), Action: func(c *cli.Context) error {
			var err error
			cfg, err = configFrom(c)
			return err
		}}}}
	err := app.RunContext(context.Background(), append([]string{"synthq", "run"}, args...))
	return cfg, err
}

// Every numeric flag of `synthq run`: a 0 given means 0 where 0 is a
// setting, and is refused, naming the flag, where it cannot work; negative
// and out-of-range values are refused before any work starts.
func TestNumericFlagsZeroAndRange(t *testing.T) {
	type flagCase struct {
		negOK  bool                           // -1 is a setting (else refused)
		zeroOK bool                           // 0 is a setting (else refused)
		get    func(*pipeline.Config) float64 // the Config field (for zeroOK)
		bad    []string                       // values refused besides -1 (and 0 when !zeroOK)
	}
	f := func(get func(*pipeline.Config) float64, bad ...string) flagCase {
		return flagCase{zeroOK: true, get: get, bad: bad}
	}
	refused := func(bad ...string) flagCase { return flagCase{bad: bad} }
	cases := map[string]flagCase{
		"queries-per-type":   refused(),
		"temperature":        f(func(c *pipeline.Config) float64 { return c.Temperature }),
		"top-p":              f(func(c *pipeline.Config) float64 { return c.TopP }, "1.5"),
		"rpm":                f(func(c *pipeline.Config) float64 { return c.RPM }),
		"tpm":                f(func(c *pipeline.Config) float64 { return c.TPM }),
		"teacher-rpm":        f(func(c *pipeline.Config) float64 { return c.TeacherRPM }),
		"price-input":        f(func(c *pipeline.Config) float64 { return c.PriceInput }),
		"price-output":       f(func(c *pipeline.Config) float64 { return c.PriceOutput }),
		"max-tokens":         refused(),
		"max-passage-chars":  refused(),
		"few-shot":           f(func(c *pipeline.Config) float64 { return float64(c.FewShot) }),
		"max-query-words":    refused(),
		"max-copied-words":   refused(),
		"dedup-threshold":    refused("1.5"),
		"max-passages":       f(func(c *pipeline.Config) float64 { return float64(c.MaxPassages) }),
		"holdout":            f(func(c *pipeline.Config) float64 { return float64(c.Holdout) }),
		"candidates":         refused(),
		"roundtrip-k":        f(func(c *pipeline.Config) float64 { return float64(c.RoundtripK) }),
		"min-candidates":     f(func(c *pipeline.Config) float64 { return float64(c.MinCandidates) }, "102"),
		"teacher-batch":      refused(),
		"max-concurrency":    refused(),
		"max-outage":         refused(),
		"grace":              f(func(c *pipeline.Config) float64 { return float64(c.Grace) }),
		"teacher-max-tokens": {negOK: true, bad: []string{"-2"}},
		"embed-max-tokens":   {negOK: true, bad: []string{"-2"}},
		"max-retries":        f(func(c *pipeline.Config) float64 { return float64(c.MaxRetries) }),
		"request-timeout":    refused("-1s"),
		"bm25-k1":            f(func(c *pipeline.Config) float64 { return c.BM25K1 }),
		"bm25-b":             f(func(c *pipeline.Config) float64 { return c.BM25B }, "1.5"),
		"rrf-k":              refused(),
		"embed-batch":        refused(),
		"dense-lists":        f(func(c *pipeline.Config) float64 { return float64(c.DenseLists) }),
		"dense-probe":        f(func(c *pipeline.Config) float64 { return float64(c.DenseProbe) }),
		"list-size":          refused("1"),
		"min-top-percentile": f(func(c *pipeline.Config) float64 { return c.MinTopPercentile }, "101"),
		"dev-fraction":       f(func(c *pipeline.Config) float64 { return c.DevFraction }, "1"),
		"seed":               f(func(c *pipeline.Config) float64 { return float64(c.Seed) }),
		"tolerate-failed":    f(func(c *pipeline.Config) float64 { return c.TolerateFailed }, "1.5"),
	}
	base := []string{"--offline", "--corpus", "c.jsonl", "--out", t.TempDir()}
	if _, err := parseRun(t, base...); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for _, fl := range runFlags() {
		name, zero, neg := fl.Names()[0], "0", "-1"
		switch fl.(type) {
		case *altsrc.IntFlag, *altsrc.Float64Flag, *cli.IntFlag, *cli.Float64Flag:
		case *altsrc.DurationFlag, *cli.DurationFlag:
			zero, neg = "0s", "-1s"
		default:
			continue
		}
		tc, ok := cases[name]
		if !ok {
			t.Errorf("--%s: numeric flag missing from this table: say what 0 and negative values do", name)
			continue
		}
		delete(cases, name)
		t.Run(name, func(t *testing.T) {
			cfg, err := parseRun(t, append(base, "--"+name, zero)...)
			switch {
			case tc.zeroOK && err != nil:
				t.Errorf("--%s 0 refused: %v", name, err)
			case tc.zeroOK && tc.get(cfg) != 0:
				t.Errorf("--%s 0 became %v", name, tc.get(cfg))
			case !tc.zeroOK && (err == nil || !strings.Contains(err.Error(), "--"+name)):
				t.Errorf("--%s 0: err %v, want a refusal naming the flag", name, err)
			}
			vals := tc.bad
			if !tc.negOK {
				vals = append([]string{neg}, vals...)
			} else if _, err := parseRun(t, append(base, "--"+name, neg)...); err != nil {
				t.Errorf("--%s %s refused: %v", name, neg, err)
			}
			for _, v := range vals {
				if _, err := parseRun(t, append(base, "--"+name, v)...); err == nil || !strings.Contains(err.Error(), "--"+name) {
					t.Errorf("--%s %s: err %v, want a refusal naming the flag", name, v, err)
				}
			}
		})
	}
	for name := range cases {
		t.Errorf("table has --%s, which is not a numeric flag of run", name)
	}
}

// A key of the --config file that names no flag is an error naming the
// closest flag; a secret in the file is refused with where to put it.
func TestConfigFileUnknownKey(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "synthq.yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := []string{"--offline", "--corpus", "c.jsonl", "--out", dir}
	cases := []struct{ file, want string }{
		{"queries-per-typ: 3\n", `unknown key "queries-per-typ" (did you mean "queries-per-type"`},
		{"list-size: 5\nminimum-candidatez: 2\n", `unknown key "minimum-candidatez"`},
		{"llm-api-key: sk-1\n", `"llm-api-key" is not read from a config file`},
		{"- a\n- b\n", "not a YAML mapping"},
	}
	for _, tc := range cases {
		_, err := parseRun(t, append(base, "--config", write(tc.file))...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.file, err, tc.want)
		}
	}
	cfg, err := parseRun(t, append(base, "--config", write("queries-per-type: 3\nfew-shot: 0\nbm25-b: 0.0\n"))...)
	if err != nil || cfg.QueriesPerType != 3 || cfg.FewShot != 0 || cfg.BM25B != 0 {
		t.Errorf("valid file: %v, %+v", err, cfg)
	}
}

// Item 5 of issue 23: list-like options take YAML lists, and any value that
// does not fit its flag is an error naming the file, the line and the key
// (not "Mismatched type for flag 'query-types'").
func TestConfigFileValues(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "synthq.yaml")
	write := func(body string) {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := []string{"--offline", "--corpus", "c.jsonl", "--out", dir, "--config", p}
	write(`# lists where a flag takes several values
query-types: [questions, claims]
retriever:
  - bm25
format: [parquet, jsonl]
llm-url: [http://a:8000/v1, http://b:8000/v1]
teacher-url: http://t:8080
query-prefix: ["query: "]
grace: 5s
max-outage: 1h30m
require-source-top1: false
min-top-percentile: 10
seed: 3
`)
	cfg, err := parseRun(t, base...)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cfg.QueryTypes, cfg.Retrievers, cfg.Formats, cfg.LLMURLs, cfg.TeacherURLs, cfg.QueryPrefixes, cfg.Grace, cfg.MaxOutage, cfg.RequireSourceTop1, cfg.MinTopPercentile, cfg.Seed); got !=
		"[questions claims] [bm25] [parquet jsonl] [http://a:8000/v1 http://b:8000/v1] [http://t:8080] [query: ] 5s 1h30m0s false 10 3" {
		t.Errorf("file values read as %s", got)
	}
	cases := []struct{ file, want string }{
		{"seed: 1\nlist-size: [5, 6]\n", `synthq.yaml:2: key "list-size": want a whole number, not a list`},
		{"list-size: many\n", `synthq.yaml:1: key "list-size": want a whole number, got "many"`},
		{"list-size: 2.5\n", `synthq.yaml:1: key "list-size": want a whole number, got "2.5"`},
		{"temperature: hot\n", `synthq.yaml:1: key "temperature": want a number, got "hot"`},
		{"offline: yes\n", `synthq.yaml:1: key "offline": want true or false, got "yes"`},
		{"grace: 30\n", `synthq.yaml:1: key "grace": want a duration such as 30s, 5m or 1h30m, got "30"`},
		{"llm-model: [a, b]\n", `synthq.yaml:1: key "llm-model": want one value (a string), not a list`},
		{"llm-model:\n", `synthq.yaml:1: key "llm-model": no value`},
		{"norm: {a: 1}\n", `synthq.yaml:1: key "norm": want a value or a list of values, not a mapping`},
		{"seed: 1\n\nqueries-per-typ: 3\n", `synthq.yaml:3: unknown key "queries-per-typ" (did you mean "queries-per-type"`},
		{"seed: 1\nseed: 2\n", `synthq.yaml:2: key "seed" given twice (first on line 1)`},
		{"seed: [1\n", `synthq.yaml: not YAML: yaml: line 1`},
	}
	for _, tc := range cases {
		write(tc.file)
		_, err := parseRun(t, base...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.file, err, tc.want)
		}
	}
}

// The flags' defaults are pipeline.DefaultConfig's: one set of defaults
// whether synthq is run from the command line or used as a library.
func TestFlagDefaultsAreDefaultConfig(t *testing.T) {
	cfg, err := parseRun(t, "--corpus", "c.jsonl", "--out", "o")
	if err != nil {
		t.Fatal(err)
	}
	want := pipeline.DefaultConfig()
	want.Corpus, want.Out, want.Store = "c.jsonl", "o", filepath.Join("o", "store")
	if !reflect.DeepEqual(cfg, want) {
		g, _ := json.Marshal(cfg)
		w, _ := json.Marshal(want)
		t.Errorf("flag defaults differ from DefaultConfig:\n flags %s\n  want %s", g, w)
	}
}
