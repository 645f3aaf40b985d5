package main

import (
	"os"
	"path/filepath"
	"regexp"
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
