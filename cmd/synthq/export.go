package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/stages"
)

func exportCommand() *cli.Command {
	flags := append([]cli.Flag{
		&cli.StringFlag{Name: "store", Usage: "store directory of a run", EnvVars: env("store"), Required: true},
		&cli.StringFlag{Name: "out", Usage: "output directory (default: the run's)", EnvVars: env("out")},
		&cli.BoolFlag{Name: "quiet", Usage: "no progress output", EnvVars: env("quiet")},
	}, targetFlags()...)
	return &cli.Command{
		Name:  "export",
		Usage: "re-export a finished store with no server (target flags not given keep the run's values)",
		Flags: flags,
		Action: func(c *cli.Context) error {
			st, err := pipeline.OpenStore(c.String("store"))
			if err != nil {
				return err
			}
			defer st.Close()
			var cfg pipeline.Config
			ok, err := st.GetJSON(pipeline.PrefixMeta+"config", &cfg)
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("store " + c.String("store") + " holds no run (run `synthq run` first)")
			}
			if cfg.Layout == "" {
				cfg.Layout = "listwise"
			}
			applyTargets(c, &cfg, true)
			if c.IsSet("out") {
				cfg.Out = c.String("out")
			}
			cfg.Quiet = c.Bool("quiet")
			if err := cfg.Validate(); err != nil {
				return err
			}
			if err := stages.LayoutFormats(cfg.Layout, cfg.Formats); err != nil {
				return err
			}
			env := &pipeline.Env{Store: st, Config: &cfg,
				Progress: pipeline.NewProgress(c.App.ErrWriter, false, cfg.Quiet)}
			if err := pipeline.Run(c.Context, env, []pipeline.Stage{stages.ExportStage(nil)}); err != nil {
				return err
			}
			ex := env.Counters("export").Snapshot()
			fmt.Fprintf(c.App.ErrWriter, "wrote %d train and %d dev lists to %s (%s layout: %s)\n", ex["rows_train"], ex["rows_dev"], cfg.Out, cfg.Layout, strings.Join(cfg.Formats, ", "))
			return nil
		},
	}
}
