package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
)

// flagGroups is the help's order: the categories of flags, in the order
// `synthq <command> --help` shows them, each with its flags in order. It is
// the one place a flag's category is set (setCategories copies it into the
// flags' urfave/cli Category); a flag of a command missing from it fails
// TestEveryFlagHasACategory. A name two commands use for different things
// (report's --examples) is placed by the command's own group first.
func flagGroups(command string) []flagGroup {
	var own []flagGroup
	if command == "report" {
		own = []flagGroup{{"Report", []string{"manifest", "examples", "sample"}}}
	}
	groups := []flagGroup{
		{"Input and output", []string{"corpus", "out", "store", "merge", "force", "prepared", "queries", "qrels", "config",
			"offline", "json", "run", "report", "quiet", "id-field", "text-field", "title-field", "skip-invalid"}},
		{"Query generation (LLM)", []string{"llm-url", "llm-model", "llm-api-key", "query-types", "queries-per-type",
			"temperature", "top-p", "max-tokens", "no-n", "llm-extra", "examples", "few-shot", "max-passage-chars",
			"max-query-words", "max-copied-words"}},
		{"Passages asked about", []string{"dedup", "dedup-threshold", "max-passages", "holdout", "shard"}},
		{"First-pass retrieval (mining)", []string{"retriever", "candidates", "roundtrip-k", "min-candidates",
			"bm25-k1", "bm25-b", "rrf-k", "embed-url", "embed-model", "embed-api-key", "embed-batch",
			"embed-max-tokens", "embed-tokenizer", "query-prefix", "passage-prefix", "dense-index", "dense-lists", "dense-probe", "adapter"}},
		{"Teacher (cross-encoder)", []string{"teacher-url", "teacher-api", "teacher-model", "teacher-api-key",
			"teacher-batch", "teacher-max-tokens", "teacher-tokenizer", "teacher-input"}},
		{"Lists and export", []string{"list-size", "require-source-top1", "min-top-percentile", "norm", "dev-fraction",
			"seed", "layout", "format", "scores", "query-instruction", "corpus-license"}},
		{"Servers: concurrency, limits, failures", []string{"concurrency", "llm-concurrency", "teacher-concurrency",
			"embed-concurrency", "max-concurrency", "rpm", "tpm", "teacher-rpm", "max-retries", "request-timeout",
			"max-outage", "grace", "retry-failed", "tolerate-failed", "no-overlap"}},
		{"Query adapter", []string{"adapter", "rank", "epochs", "patience", "batch-size", "lr", "infonce", "learn-temp"}},
		{"Cost and dry run", []string{"dry-run", "tokenizer", "price-input", "price-output"}},
	}
	// The command's own groups come right after input and output.
	return slices.Concat(groups[:1], own, groups[1:])
}

type flagGroup struct {
	name  string
	flags []string
}

// requiredNotes marks, per command, the flags a user must give.
func requiredNotes(command string) map[string]string {
	switch command {
	case "run":
		return map[string]string{"corpus": "required", "llm-url": "required unless --offline", "teacher-url": "required unless --offline"}
	case "export":
		return map[string]string{"store": "required, or --merge STORE…"}
	case "eval":
		return map[string]string{"corpus": "required", "queries": "required", "qrels": "required"}
	case "adapt":
		return map[string]string{"store": "required", "out": "required"}
	case "stats", "inspect", "report":
		return map[string]string{"store": "required"}
	}
	return nil
}

// setCategories sets the urfave/cli Category of every flag of cmd from
// flagGroups.
func setCategories(cmd *cli.Command) {
	cat := map[string]string{}
	for _, g := range flagGroups(cmd.Name) {
		for _, n := range g.flags {
			if _, ok := cat[n]; !ok {
				cat[n] = g.name
			}
		}
	}
	for _, f := range cmd.Flags {
		if c, ok := cat[f.Names()[0]]; ok {
			if p, _ := fieldsOf(f); p != nil {
				*p = c
			}
		}
	}
}

// fieldsOf points at the Category and DefaultText fields of a flag of the
// kinds synthq uses (nil, nil for any other kind).
func fieldsOf(f cli.Flag) (category, defaultText *string) {
	switch f := f.(type) {
	case *altsrc.StringFlag:
		return &f.StringFlag.Category, &f.StringFlag.DefaultText
	case *altsrc.IntFlag:
		return &f.IntFlag.Category, &f.IntFlag.DefaultText
	case *altsrc.Float64Flag:
		return &f.Float64Flag.Category, &f.Float64Flag.DefaultText
	case *altsrc.BoolFlag:
		return &f.BoolFlag.Category, &f.BoolFlag.DefaultText
	case *altsrc.DurationFlag:
		return &f.DurationFlag.Category, &f.DurationFlag.DefaultText
	case *altsrc.StringSliceFlag:
		return &f.StringSliceFlag.Category, &f.StringSliceFlag.DefaultText
	case *cli.StringFlag:
		return &f.Category, &f.DefaultText
	case *cli.IntFlag:
		return &f.Category, &f.DefaultText
	case *cli.Float64Flag:
		return &f.Category, &f.DefaultText
	case *cli.BoolFlag:
		return &f.Category, &f.DefaultText
	case *cli.DurationFlag:
		return &f.Category, &f.DefaultText
	case *cli.StringSliceFlag:
		return &f.Category, &f.DefaultText
	}
	return nil, nil
}

// runsDefault makes the help of the named flags say that they default to
// the run's value (export and report keep what the run used).
func runsDefault(flags []cli.Flag, names ...string) {
	for _, f := range flags {
		if _, dt := fieldsOf(f); dt != nil && slices.Contains(names, f.Names()[0]) {
			*dt = "the run's value"
		}
	}
}

// flagDoc is what the help shows of one flag.
type flagDoc struct {
	names    []string
	kind     string // "" for a boolean
	usage    string
	def      string // the default as typed on the command line; "" for none
	env      bool   // has its SYNTHQ_ variable
	category string
	required bool
}

func docOf(f cli.Flag) flagDoc {
	d := flagDoc{names: f.Names()}
	if df, ok := f.(cli.DocGenerationFlag); ok {
		d.usage = df.GetUsage()
		d.env = len(df.GetEnvVars()) > 0
		if df.TakesValue() {
			d.def = df.GetDefaultText()
			if d.def == "" {
				d.def = df.GetValue()
			}
		}
	}
	if cf, ok := f.(cli.CategorizableFlag); ok {
		d.category = cf.GetCategory()
	}
	if rf, ok := f.(cli.RequiredFlag); ok {
		d.required = rf.IsRequired()
	}
	_, dt := fieldsOf(f)
	switch f := f.(type) {
	case *altsrc.BoolFlag:
		d.def = boolDefault(f.BoolFlag.Value)
	case *cli.BoolFlag:
		d.def = boolDefault(f.Value)
	case *altsrc.IntFlag, *cli.IntFlag:
		d.kind = "int"
	case *altsrc.Float64Flag, *cli.Float64Flag:
		d.kind = "float"
	case *altsrc.DurationFlag, *cli.DurationFlag:
		d.kind = "duration"
	case *altsrc.StringSliceFlag, *cli.StringSliceFlag:
		d.kind, d.def = "strings", ""
	default:
		d.kind = "string"
		if d.def != "" && strings.TrimSpace(d.def) != d.def {
			d.def = fmt.Sprintf("%q", d.def)
		}
	}
	if dt != nil && *dt != "" {
		d.def = *dt
	}
	return d
}

// boolDefault shows only a true default (a false one is the flag absent).
func boolDefault(v bool) string {
	if v {
		return "true"
	}
	return ""
}

// helpTemplate is the help of one command: its flags grouped by concern in
// flagGroups' order, required ones marked, defaults as typed on the command
// line. It is a text/template for urfave/cli (CustomHelpTemplate); the flag
// lines are literal text in it.
func helpTemplate(cmd *cli.Command) string {
	const head = `NAME:
   {{template "helpNameTemplate" .}}

USAGE:
   {{template "usageTemplate" .}}{{if .Description}}

DESCRIPTION:
   {{template "descriptionTemplate" .}}{{end}}
`
	var b strings.Builder
	docs := map[string]flagDoc{}
	var order []string
	allEnv := true
	for _, f := range cmd.Flags {
		d := docOf(f)
		docs[d.names[0]] = d
		order = append(order, d.names[0])
		allEnv = allEnv && (d.env || d.names[0] == "config")
	}
	notes := requiredNotes(cmd.Name)
	line := func(d flagDoc) string {
		var names []string
		for _, n := range d.names {
			if len(n) == 1 {
				names = append(names, "-"+n)
			} else {
				names = append(names, "--"+n)
			}
		}
		s := "   " + strings.Join(names, ", ")
		if d.kind != "" {
			s += " " + d.kind
		}
		u := d.usage
		if n := notes[d.names[0]]; n != "" {
			u = "(" + n + ") " + u
		} else if d.required {
			u = "(required) " + u
		}
		switch {
		case d.kind == "" && d.def == "true":
			u += " (default: true; --" + d.names[0] + "=false turns it off)"
		case d.def != "":
			u += " (default: " + d.def + ")"
		}
		return s + "\t" + u + "\n"
	}
	grouped := len(cmd.Flags) > 12
	b.WriteString("\nOPTIONS:")
	if allEnv && len(order) > 0 {
		ex := order[len(order)-1]
		for _, n := range []string{"list-size", "llm-url"} {
			if slices.Contains(order, n) {
				ex = n
			}
		}
		b.WriteString(fmt.Sprintf("\n   Every flag can also be set by the environment (--%s: %s)", ex, env(ex)[0]))
		if docs["config"].names != nil {
			b.WriteString(" or by a key of the --config YAML file, API keys excepted (flag > env > file > default)")
		}
		b.WriteString(".")
	}
	b.WriteString("\n")
	if !grouped {
		b.WriteString("\n")
		for _, n := range order {
			b.WriteString(line(docs[n]))
		}
	} else {
		// Groups in flagGroups' order, then any other category; in a group,
		// flagGroups' order, then the command's own.
		var cats []string
		rank := map[string]int{}
		for _, g := range flagGroups(cmd.Name) {
			if !slices.Contains(cats, g.name) {
				cats = append(cats, g.name)
			}
			for i, n := range g.flags {
				if _, ok := rank[n]; !ok {
					rank[n] = i
				}
			}
		}
		for _, n := range order {
			if c := docs[n].category; !slices.Contains(cats, c) {
				cats = append(cats, c)
			}
		}
		for _, c := range cats {
			var in []string
			for _, n := range order {
				if docs[n].category == c {
					in = append(in, n)
				}
			}
			if len(in) == 0 {
				continue
			}
			slices.SortStableFunc(in, func(a, b string) int {
				ra, oka := rank[a]
				rb, okb := rank[b]
				switch {
				case oka && okb:
					return ra - rb
				case oka:
					return -1
				case okb:
					return 1
				}
				return 0
			})
			title := c
			if title == "" {
				title = "Other"
			}
			b.WriteString("\n   " + strings.ToUpper(title) + "\n")
			for _, n := range in {
				b.WriteString(line(docs[n]))
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("   --help, -h\tshow this help\n")
	// The flag lines are literal text of the template.
	return head + strings.ReplaceAll(b.String(), "{{", `{{"{{"}}`)
}

// usageError is a mistake in how synthq was called (unknown command or flag,
// a missing or malformed value): exit status 2, one line, a pointer to
// --help.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// usagef makes a usageError for command (the subcommand's name, or "" for
// synthq itself) ending with where to look.
func usagef(command, format string, args ...any) error {
	help := "synthq --help"
	prefix := ""
	if command != "" {
		help = "synthq " + command + " --help"
		prefix = command + ": "
	}
	return usageError{prefix + fmt.Sprintf(format, args...) + " (see " + help + ")"}
}

var (
	flagUndefined = regexp.MustCompile(`^flag provided but not defined: -+(.+)$`)
	flagDashed    = regexp.MustCompile(`(^|[ :])-([a-zA-Z0-9][a-zA-Z0-9-]*)`)
)

// onUsageError turns urfave/cli's parse errors ("flag provided but not
// defined: -min-candidate", then ~100 lines of help) into one line with the
// closest flag.
func onUsageError(c *cli.Context, err error, isSubcommand bool) error {
	name := ""
	if isSubcommand {
		name = c.Command.Name
	}
	if m := flagUndefined.FindStringSubmatch(err.Error()); m != nil {
		msg := "unknown flag --" + m[1]
		var names []string
		for _, f := range c.Command.Flags {
			names = append(names, f.Names()...)
		}
		names = append(names, "help")
		if near := closest(strings.TrimLeft(m[1], "-"), names); near != "" {
			msg += "; did you mean --" + near + "?"
		}
		return usagef(name, "%s", msg)
	}
	return usagef(name, "%s", flagDashed.ReplaceAllString(err.Error(), "$1--$2"))
}

// unknownCommand is the root action: synthq with no command shows the help,
// with an unknown one says so with the closest command.
func unknownCommand(c *cli.Context) error {
	if c.Bool("version") {
		fmt.Fprintln(c.App.Writer, versionString())
		return nil
	}
	if !c.Args().Present() {
		return cli.ShowAppHelp(c)
	}
	got := c.Args().First()
	var names []string
	for _, cmd := range c.App.Commands {
		if !cmd.Hidden {
			names = append(names, cmd.Name)
		}
	}
	msg := fmt.Sprintf("unknown command %q", got)
	if near := closest(got, names); near != "" {
		msg += fmt.Sprintf("; did you mean %q?", near)
	} else {
		msg += "; the commands are " + strings.Join(names, ", ")
	}
	return usagef("", "%s", msg)
}

// requireFlags replaces urfave/cli's own check of required flags (which
// prints the whole help) with a one-line usage error, keeping the flags
// marked required in the help.
func requireFlags(cmd *cli.Command) {
	var req []string
	for _, f := range cmd.Flags {
		if rf, ok := f.(cli.RequiredFlag); ok && rf.IsRequired() {
			req = append(req, f.Names()[0])
			if sf, ok := f.(*cli.StringFlag); ok {
				sf.Required = false
			}
		}
	}
	if len(req) == 0 {
		return
	}
	before := cmd.Before
	cmd.Before = func(c *cli.Context) error {
		for _, n := range req {
			if !c.IsSet(n) {
				return usagef(cmd.Name, "--%s is required", n)
			}
		}
		if before != nil {
			return before(c)
		}
		return nil
	}
}

// interleave lets flags follow positional arguments, as the README writes
// them (`synthq inspect --store out/store kb001:questions:0 --json`): the
// Go flag parser under urfave/cli stops at the first argument that is not a
// flag, so the flags of the command (with their values) are moved in front
// of its arguments, order kept. Everything after "--" stays an argument.
func interleave(cmds []*cli.Command, args []string) []string {
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		i++ // synthq's own flags (--help, --version)
	}
	if i >= len(args) {
		return args
	}
	var cmd *cli.Command
	for _, c := range cmds {
		if c.HasName(args[i]) {
			cmd = c
		}
	}
	if cmd == nil || cmd.SkipFlagParsing {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		tv := false
		if df, ok := f.(cli.DocGenerationFlag); ok {
			tv = df.TakesValue()
		}
		for _, n := range f.Names() {
			takesValue[n] = tv
		}
	}
	out := append([]string{}, args[:i+1]...)
	var pos []string
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		switch {
		case a == "--":
			pos = append(pos, rest[j:]...)
			j = len(rest)
		case len(a) > 1 && a[0] == '-':
			out = append(out, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			if takesValue[name] && j+1 < len(rest) {
				j++
				out = append(out, rest[j])
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(out, pos...)
}

// helpCommand replaces urfave/cli's: `synthq help COMMAND` shows the same
// help as `synthq COMMAND --help`, `synthq help` the commands, and an
// unknown COMMAND is the same one-line usage error (exit 2) as `synthq
// COMMAND`, not urfave's "No help topic".
func helpCommand() *cli.Command {
	return &cli.Command{
		Name: "help", Aliases: []string{"h"}, Usage: "show the commands, or one command's flags", ArgsUsage: "[command]",
		Action: func(c *cli.Context) error {
			name := c.Args().First()
			switch {
			case name == "":
				return cli.ShowAppHelp(c)
			case c.App.Command(name) != nil:
				// From the app's context: the help command's own has
				// (no) subcommands, where urfave would look.
				return cli.ShowCommandHelp(c.Lineage()[1], name)
			}
			return unknownCommand(c)
		},
	}
}
