package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/stages"
)

func exportCommand() *cli.Command {
	flags := append([]cli.Flag{
		&cli.StringFlag{Name: "store", Usage: "store directory of a run", EnvVars: env("store")},
		&cli.BoolFlag{Name: "merge", Usage: "merge the shard stores given as arguments into one dataset", EnvVars: env("merge")},
		&cli.StringFlag{Name: "out", Usage: "output directory (default: the run's)", EnvVars: env("out")},
		&cli.BoolFlag{Name: "quiet", Usage: "no progress output", EnvVars: env("quiet")},
		&cli.BoolFlag{Name: "force", Usage: "write into an --out folder that holds files synthq did not write (those of the names synthq writes are replaced; none is deleted)", EnvVars: env("force")},
	}, targetFlags()...)
	runsDefault(flags, runValueFlags...)
	return &cli.Command{
		Name:      "export",
		Usage:     "re-export a finished store with no server (target flags not given keep the run's values)",
		ArgsUsage: "[STORE… with --merge]",
		Description: `Examples:
   synthq export --store out/store --out out2/ --list-size 10
   synthq export --out merged/ --merge shard0/store shard1/store shard2/store

A target flag not given keeps the value the run used (stored with its store);
--format and --scores follow a new --layout unless given.`,
		Flags: flags,
		Action: func(c *cli.Context) error {
			paths := []string{c.String("store")}
			if c.Bool("merge") {
				paths = c.Args().Slice()
				for _, p := range paths {
					if strings.HasPrefix(p, "-") {
						return fmt.Errorf("export --merge: %q after the store list: put every flag before --merge's stores", p)
					}
				}
				if len(paths) == 0 {
					return usagef("export", "--merge: give the shard stores as arguments")
				}
				if !c.IsSet("out") {
					return usagef("export", "--merge: --out is required")
				}
			} else if paths[0] == "" {
				return usagef("export", "--store is required (or --merge STORE…)")
			}
			var stores []*pipeline.Store
			defer func() {
				for _, st := range stores {
					st.Close()
				}
			}()
			// The store of a plain export is written to (the targets for
			// inspect, the record of the export for the next one); merged
			// shards are only read. Neither is ever created.
			open := pipeline.OpenExistingStore
			if c.Bool("merge") {
				open = pipeline.OpenStoreReadOnly
			}
			for _, p := range paths {
				st, err := open(p)
				if err != nil {
					return err
				}
				stores = append(stores, st)
			}
			st := stores[0]
			var cfg pipeline.Config
			ok, err := st.GetJSON(dataset.MetaConfig, &cfg)
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("store " + paths[0] + " holds no run (run `synthq run` first)")
			}
			if cfg.Layout == "" {
				cfg.Layout = "listwise"
			}
			if err := applyTargets(c, &cfg, true); err != nil {
				return err
			}
			if c.IsSet("out") {
				cfg.Out = c.String("out")
			}
			cfg.Quiet = c.Bool("quiet")
			if err := cfg.Validate(); err != nil {
				return err
			}
			if err := stages.CheckExport(&cfg); err != nil {
				return err
			}
			if err := stages.CheckOut(cfg.Out, st.Path(), c.Bool("force")); err != nil {
				return err
			}
			env := &pipeline.Env{Store: st, Config: &cfg, Force: c.Bool("force"),
				Progress: pipeline.NewProgress(c.App.ErrWriter, false, cfg.Quiet)}
			if c.Bool("merge") {
				if err := stages.MergeExport(c.Context, env, stores, paths); err != nil {
					return err
				}
			} else if err := pipeline.Run(c.Context, env, []pipeline.Stage{stages.ExportStage(nil)}); err != nil {
				return err
			}
			ex := env.Counters("export").Snapshot()
			fmt.Fprintf(c.App.ErrWriter, "%s %d train and %d dev lists to %s (%s layout: %s)%s\n", wroteOrKept(ex), ex["rows_train"], ex["rows_dev"], cfg.Out, cfg.Layout, strings.Join(cfg.Formats, ", "), leftOut(ex, &cfg))
			return invalidLists(c.App.ErrWriter, st, &cfg, ex)
		},
	}
}

// invalidLists names the stored lists this export left out because they
// fail their check (lists of different lengths, a score that is not
// finite: a store damaged or written by a broken synthq), at most three of
// them with what is wrong, and makes the export exit 3: the files are
// written without them, the store is untouched, and `synthq run` computes
// them again. Nothing is said, and nil returned, when there were none.
func invalidLists(log io.Writer, st *pipeline.Store, cfg *pipeline.Config, ex map[string]int64) error {
	n := ex["drop_"+dataset.DropInvalidRecord]
	if n == 0 {
		return nil
	}
	fails, _, err := dataset.Failures(st, cfg.FailureScope())
	if err != nil {
		return err
	}
	shown := 0
	for _, f := range fails {
		if f.Stage != "export" || shown == 3 {
			continue
		}
		fmt.Fprintf(log, "invalid stored list %s: %s\n", f.Item, f.Reason)
		shown++
	}
	return failedItemsError{n: int(n), what: "stored lists invalid and left out (`synthq run` computes them again; see `synthq stats`)"}
}
