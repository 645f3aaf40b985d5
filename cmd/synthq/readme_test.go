package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/synthq/synthq/prompts"
)

// readme is the repository's README.md.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// flagDefault is a flag's default as its help and the README write it.
func flagDefault(f cli.Flag) string {
	switch f := f.(type) {
	case *altsrc.StringFlag:
		return f.StringFlag.Value
	case *cli.StringFlag:
		return f.Value
	case *altsrc.IntFlag:
		return strconv.Itoa(f.IntFlag.Value)
	case *altsrc.Float64Flag:
		return strconv.FormatFloat(f.Float64Flag.Value, 'g', -1, 64)
	case *altsrc.BoolFlag:
		return strconv.FormatBool(f.BoolFlag.Value)
	case *cli.BoolFlag:
		return strconv.FormatBool(f.Value)
	case *altsrc.DurationFlag:
		return f.DurationFlag.Value.String()
	}
	return ""
}

// The README's table of settings lists every flag of `synthq run` with the
// default the flag has.
func TestReadmeOptionTable(t *testing.T) {
	text := readme(t)
	start := strings.Index(text, "| flag | default | meaning |")
	if start < 0 {
		t.Fatal("README has no settings table")
	}
	end := strings.Index(text[start:], "\n\n")
	flagName := regexp.MustCompile("`--([a-z0-9-]+)`")
	documented := map[string]string{} // flag -> README default
	for _, line := range strings.Split(text[start:start+end], "\n")[2:] {
		cells := strings.Split(line, "|")[1:] // the meaning may hold no "|" the test needs
		if len(cells) < 3 {
			t.Errorf("README table row %q", line)
			continue
		}
		var names []string
		for _, m := range flagName.FindAllStringSubmatch(strings.TrimSpace(cells[0]), -1) {
			names = append(names, m[1])
		}
		def := strings.TrimSpace(cells[1])
		var defs []string
		switch {
		case strings.Contains(def, " / "):
			defs = strings.Split(def, " / ")
		case strings.Contains(def, ", ") && len(strings.Split(def, ", ")) == len(names):
			defs = strings.Split(def, ", ")
		}
		for i, n := range names {
			d := def
			if defs != nil {
				if len(defs) != len(names) {
					t.Errorf("README row %q: %d defaults for %d flags", cells[0], len(defs), len(names))
					break
				}
				d = defs[i]
			}
			documented[n] = strings.Trim(d, "`")
		}
	}
	for _, f := range runCommand().Flags {
		name := f.Names()[0]
		got, ok := documented[name]
		if !ok {
			t.Errorf("--%s is not in README's settings table", name)
			continue
		}
		delete(documented, name)
		want := flagDefault(f)
		if !sameDefault(got, want, name) {
			t.Errorf("--%s: README says default %q, the flag has %q", name, got, want)
		}
	}
	for n := range documented {
		t.Errorf("README's settings table has --%s, which synthq run does not take", n)
	}
}

// sameDefault reports whether the README's words for a default (readme)
// say what the flag's default (flag) is.
func sameDefault(readme, flag, name string) bool {
	switch readme {
	case "", "none", "built-in", "per layout", "--concurrency", "OUT/store":
		return flag == ""
	case "off", "all":
		return flag == "0"
	case "all six":
		return flag == strings.Join(prompts.Types, ",")
	}
	if a, err := time.ParseDuration(readme); err == nil {
		b, err := time.ParseDuration(flag)
		return err == nil && a == b
	}
	if a, err := strconv.ParseFloat(readme, 64); err == nil {
		b, err := strconv.ParseFloat(flag, 64)
		return err == nil && a == b
	}
	return readme == flag
}

// readmeCommands are the synthq commands of README.md as a newcomer runs
// them: every `synthq …` line of its sh blocks (continuations joined,
// comments dropped), then every inline `synthq …` with arguments, its
// [optional] parts included where they hold no placeholder.
func readmeCommands(text string) (blocks, inline []string) {
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(text, -1) {
		for _, line := range strings.Split(strings.ReplaceAll(m[1], "\\\n", " "), "\n") {
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "synthq ") {
				blocks = append(blocks, strings.Join(strings.Fields(line), " "))
			}
		}
	}
	placeholder := regexp.MustCompile(`(^|\s)([A-Z]|FILE|N)(\s|$)|…|\||/work/|\*`)
	for _, m := range regexp.MustCompile("`(synthq [^`]+)`").FindAllStringSubmatch(text, -1) {
		cmd := regexp.MustCompile(`\[([^\]]*)\]`).ReplaceAllStringFunc(m[1], func(opt string) string {
			if opt = strings.ReplaceAll(strings.Trim(opt, "[]"), "…", ""); placeholder.MatchString(opt) {
				return ""
			}
			return opt
		})
		if !slices.Contains(inline, cmd) {
			inline = append(inline, strings.Join(strings.Fields(cmd), " "))
		}
	}
	return blocks, inline
}

// shellWords splits a command line as sh does for the README's commands:
// words, "double" and 'single' quotes, and a # comment at a word's start.
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	quote, word := byte(0), false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			w.WriteByte(c)
		case c == '"' || c == '\'':
			quote, word = c, true
		case c == ' ' || c == '\t':
			if word {
				words, word = append(words, w.String()), false
				w.Reset()
			}
		case c == '#' && !word:
			return words
		default:
			w.WriteByte(c)
			word = true
		}
	}
	if word {
		words = append(words, w.String())
	}
	return words
}

// Every offline command of the README runs as written, in order, in a fresh
// folder holding the repository's testdata (the SciFact ones only where
// ../shared/data/scifact is present). Commands that need a server or a
// file of the reader's own are listed here with the reason, so a new README
// command is either run or knowingly skipped.
func TestReadmeOfflineCommands(t *testing.T) {
	text := readme(t)
	blocks, inline := readmeCommands(text)
	skip := map[string]string{
		"synthq run --corpus corpus.jsonl --out out/ --llm-url": "needs an LLM and a reranker server",
		"synthq run --dry-run --corpus corpus.jsonl":            "needs the reader's corpus and tokenizer.json",
		"synthq run": "the inline mention of the command, not a command line",
		"synthq eval --corpus C --queries Q --qrels R": "run below with SciFact's files",
		"synthq stats":            "the inline mention of the command",
		"synthq report":           "the inline mention of the command",
		"synthq inspect":          "the inline mention of the command",
		"synthq eval":             "the inline mention of the command",
		"synthq export":           "the inline mention of the command",
		"synthq prepare":          "the inline mention of the command",
		"synthq run … --out out/": "an elided command line",
		"synthq run --prepared $SYNTHQ_WORK/prep": "the Slurm task's command, run by TestSlurmJob",
		"synthq run … --report":                   "an elided command line",
		"synthq export --store … --layout …":      "an elided command line",
		"synthq adapt":                            "the inline mention of the command",
		"synthq eval --adapter":                   "the inline mention of the flag",
		"synthq eval --corpus corpus.jsonl --queries queries.jsonl --qrels qrels.tsv --retriever dense": "needs an embeddings server and the reader's queries (TestEvalAdapter)",
		"synthq adapt --store out/store --out adapter/":                                                 "needs an embeddings server (TestAdaptCommand runs it against the fake)",
	}
	skipped := func(cmd string) string {
		for prefix, why := range skip {
			if cmd == prefix || (strings.HasPrefix(cmd, prefix) && prefix != "synthq run" && prefix != "synthq stats" &&
				prefix != "synthq report" && prefix != "synthq inspect" && prefix != "synthq eval" && prefix != "synthq export" && prefix != "synthq prepare" && prefix != "synthq adapt") {
				return why
			}
		}
		return ""
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "testdata"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(corpus)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "testdata", "corpus.jsonl"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	scifact, _ := filepath.Abs(filepath.Join("..", "..", "..", "shared", "data", "scifact"))
	t.Chdir(dir)
	run := func(cmd string) {
		t.Helper()
		code, out, errs := cliRun(t, shellWords(cmd)[1:]...)
		if code != 0 {
			t.Errorf("README command %q: exit %d\n%s%s", cmd, code, out, errs)
		}
	}
	ran := 0
	for _, cmd := range append(blocks, inline...) {
		if why := skipped(cmd); why != "" {
			t.Logf("skip %q: %s", cmd, why)
			continue
		}
		if strings.Contains(cmd, "--merge shard0/store") {
			// The shards the merge reads, made as the README's shard section says.
			for i := range 3 {
				run(fmt.Sprintf("synthq run --offline --corpus testdata/corpus.jsonl --out shard%d --min-candidates 5 --shard %d/3 --quiet", i, i))
			}
		}
		run(cmd)
		t.Logf("ran %q", cmd)
		ran++
	}
	if ran < 10 {
		t.Errorf("ran %d README commands; the extraction is broken: %q %q", ran, blocks, inline)
	}
	if _, err := os.Stat(filepath.Join(scifact, "corpus.jsonl")); err != nil {
		t.Logf("SciFact not found at %s (read from ../shared, never copied into the repo): its eval command skipped", scifact)
		return
	}
	run(fmt.Sprintf("synthq eval --corpus %s --queries %s --qrels %s --retriever bm25 --json", filepath.Join(scifact, "corpus.jsonl"),
		filepath.Join(scifact, "queries.jsonl"), filepath.Join(scifact, "qrels", "test.tsv")))
}
