package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/stages"
)

func prepareCommand() *cli.Command {
	flags := runFlags()
	return &cli.Command{
		Name:  "prepare",
		Usage: "do the corpus work once for every shard of a job: read and dedup the corpus, sample, embed every passage, build the BM25 and dense indexes (then: synthq run --prepared DIR)",
		Description: `Example (one prepare, then N shards on a cluster, then one merge):
   synthq prepare --config job.yaml --corpus corpus.jsonl --out prep/
   synthq run --config job.yaml --prepared prep/ --shard auto/8 --out shard$i/   # each task
   synthq export --merge --out merged/ shard*/store

It takes run's flags (so one --config file serves prepare, run and export)
and uses those that shape the corpus work: the corpus flags, --dedup,
--dedup-threshold, --max-passages, --holdout, --seed, --retriever and the
embedding flags. The folder DIR (--out) holds a store (with the dense
index the shards search: --dense-index, --dense-lists), bm25.idx (with
--retriever bm25: the BM25 index, memory-mapped by the runs) and
prepared.json;
runs open it read-only, any number at once (a shared volume or NFS), and
refuse it if it was made from another corpus or with other settings.
Re-running prepare resumes it: nothing embedded is embedded again.`,
		Flags:  flags,
		Before: configSource(flags),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("prepare", "takes no arguments, got %q (every setting is a flag)", c.Args().First())
			}
			if c.String("corpus") == "" {
				return usagef("prepare", "--corpus is required: the JSONL file of passages to prepare")
			}
			if c.IsSet("prepared") || c.IsSet("shard") {
				return usagef("prepare", "--prepared and --shard are run's flags: prepare reads the whole corpus once for every shard")
			}
			cfg, err := configFrom(c)
			if err != nil {
				return err
			}
			return doPrepare(c.Context, cfg, c.App.ErrWriter)
		},
	}
}

// preparedStore is where a prepared folder keeps its store.
func preparedStore(dir string) string { return filepath.Join(dir, "store") }

// doPrepare reads the corpus into DIR/store, selects the passages, embeds
// every passage once per dense run and writes the BM25 index to
// DIR/bm25.idx, then writes DIR/prepared.json.
func doPrepare(ctx context.Context, cfg *pipeline.Config, log io.Writer) error {
	dir := cfg.Out
	cfg.Store = preparedStore(dir)
	st, err := pipeline.OpenStore(cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	// A prepared corpus is described by meta/prepared; until it is written
	// again at the end, runs refuse the folder as unfinished.
	if err := st.Delete(pipeline.PrefixMeta + "prepared"); err != nil {
		return err
	}
	embedders, embedHTTP, err := buildEmbedders(cfg, log)
	if err != nil {
		return err
	}
	deps := &stages.Deps{Embedders: embedders, EmbedWorkers: embedWorkers(embedHTTP), Clients: embedHTTP}
	env := &pipeline.Env{Store: st, Config: cfg,
		Progress: pipeline.NewProgress(log, log == os.Stderr && isTerminal(os.Stderr), cfg.Quiet)}
	if s := pipeline.StopperFrom(ctx); s != nil {
		s.SetGrace(cfg.Grace)
		env.Stop = s.Soft
	}
	env.Progress.Status = func() string { return endpointStatus(embedHTTP) }
	if err := pipeline.Run(ctx, env, []pipeline.Stage{stages.CorpusStage(), stages.PrepareStage(deps)}); err != nil {
		return err
	}
	m, err := stages.LoadPrepared(st, dir)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "prepared.json"), append(b, '\n')); err != nil {
		return err
	}
	if !cfg.Quiet {
		p := env.Counters("prepare").Snapshot()
		idx := ""
		for _, d := range m.Dense {
			idx += fmt.Sprintf("; %s index %s", d.Model, d.IndexMode)
			if d.IndexMode == "approx" {
				idx += fmt.Sprintf(" (%d lists)", d.IndexLists)
			}
		}
		fmt.Fprintf(log, "prepared %d passages in %s (%d passage vectors embedded, %d already stored%s); run the shards with --prepared %s\n",
			m.Passages, dir, p["passage_vectors_embedded"], p["passage_vectors_cached"], idx, dir)
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// folder and a rename, so a reader sees the old file or the new one whole.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}

// openPrepared opens a prepared folder read-only and checks it against the
// run's settings.
func openPrepared(dir string, cfg *pipeline.Config) (*pipeline.Store, stages.PreparedMeta, error) {
	if _, err := os.Stat(filepath.Join(dir, "prepared.json")); err != nil {
		return nil, stages.PreparedMeta{}, fmt.Errorf("--prepared %s: not a prepared corpus (no prepared.json; make one with synthq prepare --out %s)", dir, dir)
	}
	st, err := pipeline.OpenStoreReadOnly(preparedStore(dir))
	if err != nil {
		return nil, stages.PreparedMeta{}, fmt.Errorf("--prepared: %w", err)
	}
	m, err := stages.LoadPrepared(st, dir)
	if err == nil {
		err = stages.CheckPrepared(m, cfg, dir)
	}
	if err != nil {
		st.Close()
		return nil, m, err
	}
	return st, m, nil
}
