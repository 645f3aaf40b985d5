package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/inspect"
	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/stages"
)

var stageOrder = []string{"corpus", "generate", "filter", "mine", "label", "export"}

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:  "stats",
		Usage: "print counts per stage and drop reason, tokens and failures of a store",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "store", Usage: "store directory", EnvVars: env("store")},
			&cli.BoolFlag{Name: "merge", Usage: "one view of a sharded job, while it runs: each store given as an argument (shard*/store) is read from its progress file, with no lock, and the job's funnel summed"},
			&cli.StringFlag{Name: "out", Usage: "output folder whose export the funnel's \"exported\" and the export counts describe (default: the run's OUT)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.Float64Flag{Name: "price-input", Usage: "price per 1M prompt tokens", DefaultText: "the run's value", Action: finite("price-input")},
			&cli.Float64Flag{Name: "price-output", Usage: "price per 1M completion tokens", DefaultText: "the run's value", Action: finite("price-output")},
		},
		ArgsUsage: "[STORE… with --merge]",
		Action: func(c *cli.Context) error {
			if c.Bool("merge") {
				if c.NArg() == 0 {
					return usagef("stats", "--merge takes the shard stores as arguments, e.g. synthq stats --merge shard*/store")
				}
				now := time.Now()
				views, funnel := jobView(c.Args().Slice(), now)
				return printJob(c.App.Writer, views, funnel, now, c.Bool("json"))
			}
			if c.String("store") == "" {
				return usagef("stats", "--store is required")
			}
			st, err := pipeline.OpenStoreReadOnly(c.String("store"))
			if err != nil {
				return err
			}
			defer st.Close()
			stats, err := pipeline.LoadStats(st)
			if err != nil {
				return err
			}
			var cfg pipeline.Config
			if _, err := st.GetJSON(dataset.MetaConfig, &cfg); err != nil {
				return err
			}
			// Failures of the last run's settings; those recorded under
			// other settings are only counted.
			fails, others, err := dataset.Failures(st, cfg.FailureScope())
			if err != nil {
				return err
			}
			if fails == nil {
				fails = []dataset.Failure{}
			}
			exp, err := exportedTo(st, &cfg, c.String("store"), c.String("out"), stats)
			if err != nil {
				return err
			}
			setPrices(c, &cfg)
			if cfg.PriceInput < 0 || cfg.PriceOutput < 0 {
				return fmt.Errorf("--price-input and --price-output must not be negative")
			}
			use := stages.Usage(stats, &cfg)
			// Tokens in the store are summed from the stored answers, so an
			// interrupted run's answers count too.
			if use.PromptTokens, use.CompletionTokens, err = stages.StoredUsage(st); err != nil {
				return err
			}
			use.Cost = cfg.Cost(use.PromptTokens, use.CompletionTokens)
			var eps []httpx.EndpointStats
			if _, err := st.GetJSON(dataset.MetaEndpoints, &eps); err != nil {
				return err
			}
			size, err := st.Size()
			if err != nil {
				return err
			}
			dix, err := dataset.DenseIndexes(st)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"funnel": inspect.Funnel(stats), "stages": stats, "tokens": use, "failures": fails,
					"failures_other_settings": others, "endpoints": eps, "store": size, "dense_index": dix, "exported_to": exp})
			}
			printStats(c.App.Writer, stats, use, fails, others)
			exp.print(c.App.Writer)
			printDenseIndex(c.App.Writer, dix)
			printEndpoints(c.App.Writer, eps)
			printSize(c.App.Writer, st.Path(), size)
			return nil
		},
	}
}

// exportView says which folder's export the stats describe.
type exportView struct {
	Out string `json:"out"` // cleaned absolute path ("" for a store from before per-folder records)
	// Found is false when the store records no export to Out.
	Found bool `json:"found"`
	// Others are the other folders the store was exported to.
	Others []string `json:"others,omitempty"`
}

func (e exportView) print(w io.Writer) {
	switch {
	case e.Out == "":
		fmt.Fprintf(w, "exported  the last export (this store does not record its folder)\n")
	case e.Found:
		fmt.Fprintf(w, "exported  counts of the last export to %s\n", e.Out)
	default:
		fmt.Fprintf(w, "exported  nothing to %s yet\n", e.Out)
	}
	if len(e.Others) > 0 {
		fmt.Fprintf(w, "          also exported to %s (stats --out FOLDER)\n", strings.Join(e.Others, ", "))
	}
}

// exportedTo puts the export to out (default: the run's OUT) in
// stats["export"], in place of the last export anywhere, and says which
// folder it is. A store from before per-folder records keeps its last
// export.
func exportedTo(st *pipeline.Store, cfg *pipeline.Config, storeArg, out string, stats map[string]pipeline.StageStats) (exportView, error) {
	all, err := stages.Exports(st)
	if err != nil || len(all) == 0 && out == "" {
		return exportView{}, err
	}
	var v exportView
	if out != "" {
		abs, err := filepath.Abs(out)
		if err != nil {
			return v, err
		}
		v.Out = filepath.Clean(abs)
	} else {
		v.Out = stages.RunOut(cfg, storeArg)
	}
	delete(stats, "export")
	for _, r := range all {
		if r.Out == v.Out {
			v.Found = true
			stats["export"] = r.Stats
		} else {
			v.Others = append(v.Others, r.Out)
		}
	}
	return v, nil
}

// setPrices overrides the stored prices with those given.
func setPrices(c *cli.Context, cfg *pipeline.Config) {
	if c.IsSet("price-input") {
		cfg.PriceInput = c.Float64("price-input")
	}
	if c.IsSet("price-output") {
		cfg.PriceOutput = c.Float64("price-output")
	}
}

func printStats(w io.Writer, stats map[string]pipeline.StageStats, use stages.TokenUse, fails []dataset.Failure, others int) {
	fmt.Fprintf(w, "funnel\n")
	for _, s := range inspect.Funnel(stats) {
		fmt.Fprintf(w, "  %-32s %d\n", s.Step, s.Count)
	}
	for _, name := range stageOrder {
		s, ok := stats[name]
		if !ok {
			fmt.Fprintf(w, "%-9s (not run)\n", name)
			continue
		}
		if s.AheadSeconds > 0 {
			fmt.Fprintf(w, "%-9s %.1fs (and %.1fs ahead, beside the stages before it)\n", name, s.Seconds, s.AheadSeconds)
		} else {
			fmt.Fprintf(w, "%-9s %.1fs\n", name, s.Seconds)
		}
		for _, k := range pipeline.SortedKeys(s.Counts) {
			fmt.Fprintf(w, "  %-32s %d\n", k, s.Counts[k])
		}
	}
	fmt.Fprintf(w, "tokens    %d prompt + %d completion in the store, cost %.4f (at %g/%g per 1M)\n",
		use.PromptTokens, use.CompletionTokens, use.Cost, use.PriceInput, use.PriceOutput)
	fmt.Fprintf(w, "          last run: %d requests, %d prompt + %d completion, cost %.4f\n",
		use.LastRunRequests, use.LastRunPromptTokens, use.LastRunCompletionTokens, use.LastRunCost)
	if p := use.PaidRun; p != nil {
		fmt.Fprintf(w, "          last run that sent requests (%s): %d requests, %d prompt + %d completion, cost %.4f, %.1fs\n",
			p.Finished.UTC().Format("2006-01-02 15:04 UTC"), p.Requests, p.PromptTokens, p.CompletionTokens, p.Cost, p.Seconds)
	}
	fmt.Fprintf(w, "failures  %d\n", len(fails))
	if others > 0 {
		fmt.Fprintf(w, "          (%d more recorded under other settings; they do not count)\n", others)
	}
	for i, f := range fails {
		if i == 20 {
			fmt.Fprintf(w, "  … %d more (--json lists all)\n", len(fails)-20)
			break
		}
		fmt.Fprintf(w, "  %s %s: %s\n", f.Stage, f.Item, f.Reason)
	}
}

// printDenseIndex prints how each dense run searched, with the recall
// self-check of an approximate index.
func printDenseIndex(w io.Writer, dix []dataset.DenseIndexInfo) {
	for _, d := range dix {
		if d.Mode != "approx" {
			fmt.Fprintf(w, "dense     %s: exact search over %d passages × %d dims\n", d.Run, d.Passages, d.Dim)
			continue
		}
		warn := ""
		if d.Queries > 0 && d.Recall < stages.RecallWarn {
			warn = fmt.Sprintf("  (below %.2f: raise --dense-probe)", stages.RecallWarn)
		}
		fmt.Fprintf(w, "dense     %s: approximate (IVF, %d lists, %d probed) over %d passages × %d dims; recall@%d against exact %.4f on %d sampled queries%s\n",
			d.Run, d.Lists, d.Probe, d.Passages, d.Dim, d.K, d.Recall, d.Queries, warn)
	}
}

// printEndpoints prints the last run's figures per endpoint.
func printEndpoints(w io.Writer, eps []httpx.EndpointStats) {
	if len(eps) == 0 {
		return
	}
	fmt.Fprintf(w, "endpoints (last run that sent requests)\n  %-8s %-36s %9s %9s %8s %7s %11s %8s %8s %8s\n",
		"role", "url", "requests", "answered", "refused", "errors", "concurrency", "rate/s", "p50 ms", "p99 ms")
	for _, e := range eps {
		fmt.Fprintf(w, "  %-8s %-36s %9d %9d %8d %7d %11d %8.1f %8.0f %8.0f\n",
			e.Role, e.URL, e.Requests, e.Served, e.Refusals, e.Errors, e.Concurrency, e.Rate, e.P50ms, e.P99ms)
	}
}

// printSize says what the store takes on disk and how much of it is live
// data (the rest is space Badger has not reclaimed yet).
func printSize(w io.Writer, path string, s pipeline.StoreSize) {
	fmt.Fprintf(w, "store     %s on disk, %s live in %d records (%s)\n", mb(s.DiskBytes), mb(s.LiveBytes), s.Keys, path)
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
