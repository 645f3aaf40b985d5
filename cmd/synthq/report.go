package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/report"
	"github.com/synthq/synthq/stages"
)

func reportCommand() *cli.Command {
	flags := append([]cli.Flag{
		&cli.StringFlag{Name: "store", Usage: "store directory of a run", EnvVars: env("store"), Required: true},
		&cli.StringFlag{Name: "out", Usage: "HTML file to write", Value: "report.html"},
		&cli.BoolFlag{Name: "force", Usage: "replace --out even when it is not a report synthq wrote"},
		&cli.StringFlag{Name: "manifest", Usage: "the run's manifest.json, for retries and who served what (default: OUT/manifest.json of the run, if there)"},
		&cli.IntFlag{Name: "examples", Usage: "examples per query type and per drop reason", Value: 3},
		&cli.IntFlag{Name: "sample", Usage: "queries whose first-pass lists and passages are read for the rank and copying figures (a seeded sample beyond)", Value: 20000},
	}, targetFlags()...)
	runsDefault(flags, runValueFlags...)
	return &cli.Command{
		Name:  "report",
		Usage: "write one self-contained HTML page that shows a run: funnel, query lengths, teacher scores, first-pass ranks, cost, examples, settings",
		Description: `Example:
   synthq report --store out/store --out report.html

Target flags (--list-size, --min-top-percentile, …) show the data as an export with them would write it.`,
		Flags: flags,
		Action: func(c *cli.Context) error {
			if err := checkReportPath(c.String("out"), c.Bool("force")); err != nil {
				return err
			}
			st, cfgp, err := openRun(c.String("store"))
			if err != nil {
				return err
			}
			defer st.Close()
			cfg := *cfgp
			applyTargets(c, &cfg, true)
			if err := cfg.Validate(); err != nil {
				return err
			}
			manifest := c.String("manifest")
			if manifest == "" && cfg.Out != "" {
				manifest = filepath.Join(cfg.Out, "manifest.json")
			}
			opts := &report.Options{StorePath: c.String("store"), Manifest: manifest,
				Examples: c.Int("examples"), Sample: c.Int("sample")}
			d, err := writeReportData(c.Context, st, &cfg, opts, c.String("out"), c.Bool("force"))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.ErrWriter, "wrote %s\n", c.String("out"))
			if d.InvalidLists > 0 {
				// Left out of every figure: say so, and exit 3.
				fmt.Fprintf(c.App.ErrWriter, "report: %v (left out)\n", d.FirstInvalid)
				return failedItemsError{n: int(d.InvalidLists), what: "stored lists invalid and left out of the report (`synthq run` computes them again)"}
			}
			return nil
		},
	}
}

// checkReportPath refuses to write the report to path when path is a
// symbolic link (always) or an existing file that is not a report synthq
// wrote (unless force), naming it.
func checkReportPath(path string, force bool) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("report: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("report: %s is a symbolic link: synthq writes no report through a link; remove it or choose another --out", path)
	case fi.IsDir():
		return fmt.Errorf("report: %s is a folder: give the HTML file to write", path)
	case !force && !stages.IsSynthqReport(path):
		return fmt.Errorf("report: %s is there and is not a report synthq wrote: choose another --out, or give --force to replace it", path)
	}
	return nil
}

// writeReport builds the report of st and writes it to path: to a new
// temporary file beside it (O_EXCL, a random name) renamed over path when
// complete. path is checked first (checkReportPath).
func writeReport(ctx context.Context, st *pipeline.Store, cfg *pipeline.Config, opts *report.Options, path string, force bool) error {
	_, err := writeReportData(ctx, st, cfg, opts, path, force)
	return err
}

// writeReportData is writeReport, returning what the report shows.
func writeReportData(ctx context.Context, st *pipeline.Store, cfg *pipeline.Config, opts *report.Options, path string, force bool) (*report.Data, error) {
	if err := checkReportPath(path, force); err != nil {
		return nil, err
	}
	d, err := report.Build(ctx, st, cfg, opts)
	if err != nil {
		return nil, err
	}
	return d, writeReportFile(d, path, force)
}

// writeReportFile renders d to path through a temporary file.
func writeReportFile(d *report.Data, path string, force bool) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	tmp := f.Name()
	w := bufio.NewWriter(f)
	err = report.Render(w, d)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	if err := checkReportPath(path, force); err != nil { // a link planted meanwhile
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil { // CreateTemp makes it 0600
		os.Remove(tmp)
		return fmt.Errorf("report: %w", err)
	}
	return os.Rename(tmp, path)
}

// runReport writes OUT/report.html after a run (synthq run --report).
func runReport(ctx context.Context, cfg *pipeline.Config, force bool, log io.Writer) error {
	st, err := pipeline.OpenStoreReadOnly(cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	path := filepath.Join(cfg.Out, "report.html")
	opts := &report.Options{StorePath: cfg.Store, Manifest: filepath.Join(cfg.Out, "manifest.json")}
	if err := writeReport(ctx, st, cfg, opts, path, force); err != nil {
		return err
	}
	if !cfg.Quiet {
		fmt.Fprintf(log, "wrote %s\n", path)
	}
	return nil
}
