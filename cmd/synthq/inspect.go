package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/inspect"
	"github.com/synthq/synthq/internal/redact"
	"github.com/synthq/synthq/pipeline"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "tell one query's whole story: passage, prompt, raw answer, parsed query, candidates with ranks and scores, why kept or dropped",
		ArgsUsage: "QID   (<docid>:<type>:<n>, as in the qid column)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "store", Usage: "store directory", EnvVars: env("store"), Required: true},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("inspect", "give one qid, e.g. synthq inspect --store out/store kb001:questions:0, got %d arguments", c.NArg())
			}
			st, cfg, err := openRun(c.String("store"))
			if err != nil {
				return err
			}
			defer st.Close()
			s, err := inspect.Slot(c.Context, st, cfg, c.Args().First())
			if err != nil {
				return err
			}
			if s.Failure != nil {
				s.Failure.Reason = redact.Text(s.Failure.Reason) // stores written before redaction
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			printStory(c.App.Writer, s)
			return nil
		},
	}
}

func printStory(w io.Writer, s *inspect.Story) {
	fmt.Fprintf(w, "qid      %s\n", s.QID)
	fmt.Fprintf(w, "outcome  %s\n\n", s.Outcome)
	fmt.Fprintf(w, "── passage (corpus line %d) ──\n%s\n\n", s.Passage.Line, s.Passage.Full())
	if len(s.Prompt) > 0 {
		fmt.Fprintf(w, "── prompt ──\n")
		for _, m := range s.Prompt {
			fmt.Fprintf(w, "[%s]\n%s\n", m.Role, strings.TrimRight(m.Content, "\n"))
		}
		fmt.Fprintln(w)
	}
	switch {
	case s.Answer != nil:
		fmt.Fprintf(w, "── raw answer (%s, finish %s, %d+%d tokens) ──\n%s\n\n", s.Answer.Model, s.Answer.FinishReason,
			s.Answer.PromptTokens, s.Answer.CompletionTokens, s.Answer.Content)
	case s.Failure != nil:
		fmt.Fprintf(w, "── no answer: failed ──\n%s\n\n", s.Failure.Reason)
	}
	if s.Query != nil {
		if s.Query.Drop != "" {
			fmt.Fprintf(w, "parsed   (dropped: %s)\n", s.Query.Drop)
		} else {
			fmt.Fprintf(w, "parsed   %s\n", s.Query.Text)
		}
	}
	if len(s.Candidates) > 0 {
		fmt.Fprintf(w, "\n%-5s %-20s %6s %10s %8s\n", "list", "docid", "rank", "raw", "score")
		for _, c := range s.Candidates {
			pos, raw, score := "", "", ""
			if c.Exported > 0 {
				pos = fmt.Sprint(c.Exported)
			}
			if c.Raw != nil {
				raw, score = fmt.Sprintf("%.4f", *c.Raw), fmt.Sprintf("%.4f", *c.Score)
			}
			id := c.DocID
			if c.Source {
				id += " *"
			}
			fmt.Fprintf(w, "%-5s %-20s %6d %10s %8s\n", pos, id, c.Rank, raw, score)
		}
		fmt.Fprintf(w, "(* the source passage; list: position in the exported list)\n")
	}
}

// openRun opens a store read-only (see pipeline.OpenStoreReadOnly) and
// reads the settings of its last run (defaults filled). The caller closes
// the store.
func openRun(path string) (*pipeline.Store, *pipeline.Config, error) {
	st, err := pipeline.OpenStoreReadOnly(path)
	if err != nil {
		return nil, nil, err
	}
	var cfg pipeline.Config
	if ok, err := st.GetJSON(dataset.MetaConfig, &cfg); err != nil || !ok {
		st.Close()
		if err == nil {
			err = errors.New("store " + path + " holds no run (run `synthq run` first)")
		}
		return nil, nil, err
	}
	cfg.EnsureDefaults()
	return st, &cfg, nil
}
