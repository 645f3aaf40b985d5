package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"
)

// configSource reads the --config YAML file into flags (altsrc: flag > env >
// file > default). Every key must name one of the command's flags (a
// misspelt key is an error naming the closest flag, never a setting
// silently left at its default) and every value must fit its flag; errors
// name the file, the line and the key. List-like options take a YAML list
// or a comma list (`query-types: [questions, claims]`).
func configSource(flags []cli.Flag) cli.BeforeFunc {
	return func(c *cli.Context) error {
		path := c.String("config")
		if path == "" {
			return nil
		}
		values, err := readConfig(path, flags)
		if err != nil {
			return err
		}
		return altsrc.InitInputSourceWithContext(flags, func(*cli.Context) (altsrc.InputSourceContext, error) {
			return altsrc.NewMapInputSource(path, values), nil
		})(c)
	}
}

// commaLists are the string flags that take a comma list, and so a YAML
// list too.
var commaLists = []string{"query-types", "retriever", "format"}

// readConfig reads the YAML file at path into the values altsrc expects of
// each flag's kind (int, float64, bool, time.Duration, string, or a list of
// strings for a repeatable flag).
func readConfig(path string, flags []cli.Flag) (map[any]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("--config %s: not YAML: %w", path, err)
	}
	values := map[any]any{}
	if len(doc.Content) == 0 {
		return values, nil // an empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("--config %s:%d: not a YAML mapping of flag names to values", path, root.Line)
	}
	byName := map[string]cli.Flag{}
	var names, secrets []string
	for _, f := range flags {
		_, fromFile := f.(altsrc.FlagInputSourceExtension)
		for _, n := range f.Names() {
			switch {
			case n == "config":
			case fromFile:
				names = append(names, n)
				byName[n] = f
			default:
				secrets = append(secrets, n)
			}
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		kn, vn := root.Content[i], root.Content[i+1]
		k := kn.Value
		at := fmt.Sprintf("--config %s:%d", path, kn.Line)
		if l, dup := seen[k]; dup {
			return nil, fmt.Errorf("%s: key %q given twice (first on line %d)", at, k, l)
		}
		seen[k] = kn.Line
		f, ok := byName[k]
		switch {
		case ok:
		case slices.Contains(secrets, k):
			return nil, fmt.Errorf("%s: %q is not read from a config file (files tend to be shared); give --%s or %s", at, k, k, env(k)[0])
		default:
			msg := fmt.Sprintf("%s: unknown key %q", at, k)
			if near := closest(k, names); near != "" {
				msg += fmt.Sprintf(" (did you mean %q, the flag --%s?)", near, near)
			}
			return nil, fmt.Errorf("%s; keys are flag names without the dashes, see `synthq run --help`", msg)
		}
		v, err := configValue(f, k, vn)
		if err != nil {
			return nil, fmt.Errorf("--config %s:%d: key %q: %w", path, vn.Line, k, err)
		}
		values[k] = v
	}
	return values, nil
}

// configValue converts one YAML value to what flag f takes.
func configValue(f cli.Flag, name string, n *yaml.Node) (any, error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	scalars := func() ([]string, error) {
		switch n.Kind {
		case yaml.ScalarNode:
			if n.Tag == "!!null" {
				return nil, errors.New("no value (leave the key out for the default)")
			}
			return []string{n.Value}, nil
		case yaml.SequenceNode:
			var out []string
			for _, e := range n.Content {
				if e.Kind != yaml.ScalarNode || e.Tag == "!!null" {
					return nil, fmt.Errorf("line %d: want a plain value in the list", e.Line)
				}
				out = append(out, e.Value)
			}
			return out, nil
		}
		return nil, errors.New("want a value or a list of values, not a mapping")
	}
	vals, err := scalars()
	if err != nil {
		return nil, err
	}
	list := n.Kind == yaml.SequenceNode
	one := func(want string) (string, error) {
		if list || len(vals) != 1 {
			return "", fmt.Errorf("want %s, not a list", want)
		}
		return vals[0], nil
	}
	switch f.(type) {
	case *altsrc.StringSliceFlag:
		out := make([]any, len(vals))
		for i, v := range vals {
			out[i] = v
		}
		return out, nil
	case *altsrc.StringFlag:
		if list && slices.Contains(commaLists, name) {
			return strings.Join(vals, ","), nil
		}
		return one("one value (a string)")
	case *altsrc.IntFlag:
		v, err := one("a whole number")
		if err != nil {
			return nil, err
		}
		i, err := strconv.Atoi(v)
		if err != nil || n.Tag != "!!int" {
			return nil, fmt.Errorf("want a whole number, got %q", v)
		}
		return i, nil
	case *altsrc.Float64Flag:
		v, err := one("a number")
		if err != nil {
			return nil, err
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || (n.Tag != "!!int" && n.Tag != "!!float") {
			return nil, fmt.Errorf("want a number, got %q", v)
		}
		return x, nil
	case *altsrc.BoolFlag:
		v, err := one("true or false")
		if err != nil {
			return nil, err
		}
		x, err := strconv.ParseBool(v)
		if err != nil || n.Tag != "!!bool" {
			return nil, fmt.Errorf("want true or false, got %q", v)
		}
		return x, nil
	case *altsrc.DurationFlag:
		v, err := one("a duration")
		if err != nil {
			return nil, err
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("want a duration such as 30s, 5m or 1h30m, got %q", v)
		}
		return d, nil
	}
	return nil, fmt.Errorf("flag of kind %T cannot be read from a file", f)
}

// closest returns the name nearest to s by edit distance, or "" when none is
// near enough to be a likely misspelling.
func closest(s string, names []string) string {
	best, bestD := "", 0
	for _, n := range names {
		d := editDistance(strings.ToLower(s), n)
		if best == "" || d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" || bestD > max(2, len(s)/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
