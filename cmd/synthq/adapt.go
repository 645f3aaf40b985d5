package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/synthq/synthq/adapter"
	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/stages"
)

// embedFlagNames are the retrieverFlags adapt takes: the embeddings endpoint
// and how texts reach it.
var embedFlagNames = []string{"embed-url", "embed-model", "embed-api-key", "embed-batch", "embed-max-tokens",
	"embed-tokenizer", "query-prefix", "passage-prefix"}

func adaptCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "store", Usage: "store directory of a finished run", EnvVars: env("store"), Required: true},
		&cli.StringFlag{Name: "out", Usage: "directory to write adapter.safetensors and adapter.json to", EnvVars: env("out"), Required: true},
		&cli.BoolFlag{Name: "quiet", Usage: "no progress output", EnvVars: env("quiet")},
		str("prepared", "", "the folder made by synthq prepare that the run read (--prepared): its passage vectors are read instead of embedded"),
	}
	for _, f := range retrieverFlags() {
		if slices.Contains(embedFlagNames, f.Names()[0]) {
			flags = append(flags, f)
		}
	}
	flags = append(flags,
		integer("concurrency", 16, "embeddings requests in flight"),
		integer("max-retries", 8, "retries of a failed request"),
		integer("rank", 0, "0: train a full d×d matrix; r > 0: W = I + U·Vᵀ of rank r (fewer parameters)"),
		integer("epochs", 20, "most passes over the training lists"),
		integer("patience", 3, "stop after this many epochs without a lower dev KL"),
		integer("batch-size", 32, "lists per Adam step"),
		float("lr", 1e-3, "Adam's learning rate"),
		float("infonce", 0, "weight of the InfoNCE term (the paper's code: 0.1; temperature 0.01, candidates above 0.6 × the source's teacher score masked); 0: KL only"),
		boolean("learn-temp", true, "train the student temperature too (from 0.05, calibrated on the training lists first): it changes no ranking, but a fixed 0.05 that does not fit the embedder's spread of cosines makes the loss reward squeezing every cosine instead of reordering"),
		integer("seed", 1, "seed of the shuffling and the low-rank start"),
	)
	runsDefault(flags, slices.DeleteFunc(slices.Clone(embedFlagNames), func(n string) bool { return n == "embed-api-key" })...)
	return &cli.Command{
		Name:  "adapt",
		Usage: "train a query-side linear adapter for an embedding model on a store's lists (no GPU: minutes on a laptop)",
		Description: `synthq adapt --store out/store --out adapter/ [--embed-url URL --embed-model M]
   Trains W (d×d, from the identity) so that softmax(cos(W·q, p)/τ) over each
   exported list matches softmax(teacher/0.3) (the paper's KL; τ is 0.05, or
   learned with --learn-temp); only queries are transformed, so an existing
   passage index stays valid. Vectors come from the embeddings endpoint
   (the run's, unless given); those the run stored are reused. Train split to
   train, dev split to stop early. Writes OUT/adapter.safetensors (float32 d×d,
   tensor "linear.weight") and OUT/adapter.json (settings, data fingerprint,
   training curve); apply it with synthq eval --adapter or as the README shows.`,
		Flags:  flags,
		Action: runAdapt,
	}
}

func runAdapt(c *cli.Context) error {
	storePath := c.String("store")
	// Writable: vectors embedded here are stored for later runs, and the
	// adapter's record for the report.
	st, err := pipeline.OpenStore(storePath)
	if err != nil {
		return err
	}
	defer st.Close()
	var cfg pipeline.Config
	if ok, err := st.GetJSON(dataset.MetaConfig, &cfg); err != nil {
		return err
	} else if !ok {
		return errors.New("store " + storePath + " holds no run (run `synthq run` first)")
	}
	cfg.EnsureDefaults()
	// Embedding flags not given keep the run's values.
	run := cfg
	applyRetriever(c, &run)
	for _, n := range embedFlagNames {
		if !c.IsSet(n) {
			continue
		}
		switch n {
		case "embed-url":
			cfg.EmbedURLs = run.EmbedURLs
		case "embed-model":
			cfg.EmbedModels = run.EmbedModels
		case "embed-api-key":
			cfg.EmbedAPIKey = run.EmbedAPIKey
		case "embed-batch":
			cfg.EmbedBatch = run.EmbedBatch
		case "embed-max-tokens":
			cfg.EmbedMaxTokens = run.EmbedMaxTokens
		case "embed-tokenizer":
			cfg.EmbedTokenizer = run.EmbedTokenizer
		case "query-prefix":
			cfg.QueryPrefixes = run.QueryPrefixes
		case "passage-prefix":
			cfg.PassagePrefixes = run.PassagePrefixes
		}
	}
	if c.IsSet("embed-api-key") || cfg.EmbedAPIKey == "" {
		cfg.EmbedAPIKey = c.String("embed-api-key") // keys are never stored: the flag or SYNTHQ_EMBED_API_KEY
	}
	if len(cfg.EmbedModels) != 1 {
		return fmt.Errorf("adapt: give one --embed-model (and its --embed-url): the run used %d", len(cfg.EmbedModels))
	}
	if len(cfg.EmbedURLs) == 0 {
		return errors.New("adapt: give --embed-url: an OpenAI-compatible /v1/embeddings server of " + cfg.EmbedModels[0])
	}
	cfg.Retrievers = []string{"dense"}
	cfg.Concurrency, cfg.MaxRetries = c.Int("concurrency"), c.Int("max-retries")
	cfg.EmbedConcurrency = 0
	cfg.Quiet = c.Bool("quiet")
	if err := cfg.Validate(); err != nil {
		return err
	}
	dense, err := cfg.DenseRuns()
	if err != nil {
		return err
	}
	embedders, hcs, err := buildEmbedders(&cfg, c.App.ErrWriter)
	if err != nil {
		return err
	}
	log := c.App.ErrWriter
	env := &pipeline.Env{Store: st, Config: &cfg, Progress: pipeline.NewProgress(log, false, cfg.Quiet)}
	if dir := c.String("prepared"); dir != "" {
		prep, _, err := openPrepared(dir, &cfg)
		if err != nil {
			return err
		}
		defer prep.Close()
		env.Prepared = prep
	}
	start := time.Now()
	data, err := stages.LoadAdapterData(c.Context, env, embedders[0], dense[0], max(embedWorkers(hcs), cfg.Concurrency))
	if err != nil {
		return err
	}
	ct := data.Counts
	if !cfg.Quiet {
		fmt.Fprintf(log, "adapt: %d train and %d dev lists, %d dims; vectors: %d passages and %d queries read from the store, %d and %d embedded (%.1fs)\n",
			len(data.Train), len(data.Dev), data.Data.Dim, ct["passage_vectors_cached"], ct["query_vectors_cached"],
			ct["passage_vectors_embedded"], ct["query_vectors_embedded"], time.Since(start).Seconds())
		for _, k := range pipeline.SortedKeys(data.Dropped) {
			fmt.Fprintf(log, "adapt: %d lists left out: %s\n", data.Dropped[k], k)
		}
	}
	loss := adapter.DefaultLoss()
	loss.InfoNCE = c.Float64("infonce")
	loss.LearnTemp = c.Bool("learn-temp")
	opt := adapter.Options{Rank: c.Int("rank"), Loss: loss, Epochs: c.Int("epochs"), Patience: c.Int("patience"),
		BatchSize: c.Int("batch-size"), LR: c.Float64("lr"), Seed: uint64(c.Int("seed")), Workers: runtime.GOMAXPROCS(0)}
	switch {
	case opt.Rank < 0 || opt.Rank > data.Data.Dim:
		return fmt.Errorf("--rank must be 0 (full) or 1..%d (the model's dimension), got %d", data.Data.Dim, opt.Rank)
	case opt.Epochs < 1, opt.Patience < 1, opt.BatchSize < 1:
		return fmt.Errorf("--epochs, --patience and --batch-size must be at least 1")
	case opt.LR <= 0 || loss.InfoNCE < 0:
		return fmt.Errorf("--lr must be positive and --infonce not negative")
	case c.Int("seed") < 0:
		return fmt.Errorf("--seed must not be negative, got %d", c.Int("seed"))
	}
	if !cfg.Quiet {
		opt.Progress = func(e adapter.Epoch, took time.Duration) {
			fmt.Fprintf(log, "adapt: %s (%.1fs)\n", e, took.Seconds())
		}
	}
	res, err := adapter.Train(c.Context, data.Data, data.Train, data.Dev, opt)
	if err != nil {
		return err
	}
	sum := adapter.Summary{
		EmbedModel: dense[0].Model, Dims: data.Data.Dim, QueryPrefix: dense[0].QueryPrefix, PassagePrefix: dense[0].PassagePrefix,
		Loss: loss.Name(), Rank: opt.Rank, LR: opt.LR, BatchSize: opt.BatchSize, Seed: opt.Seed,
		Epochs: len(res.Curve) - 1, BestEpoch: res.Best, Stopped: res.Stopped,
		TrainLists: len(data.Train), DevLists: len(data.Dev), DataFingerprint: data.Fingerprint,
		Before: res.Before, After: res.After,
	}
	meta := sum.Metadata()
	if err := os.MkdirAll(c.String("out"), 0o755); err != nil {
		return fmt.Errorf("adapt: %w", err)
	}
	var b bytes.Buffer
	if err := adapter.WriteSafetensors(&b, res.Model.Matrix(), data.Data.Dim, meta); err != nil {
		return err
	}
	jb, err := json.MarshalIndent(adapter.Record{Summary: sum, Curve: res.Curve}, "", "  ")
	if err != nil {
		return err
	}
	for name, body := range map[string][]byte{"adapter.safetensors": b.Bytes(), "adapter.json": append(jb, '\n')} {
		if err := writeFileAtomic(filepath.Join(c.String("out"), name), body); err != nil {
			return fmt.Errorf("adapt: %w", err)
		}
	}
	// The report shows the last adapter trained on this store.
	sum.Path = filepath.Join(c.String("out"), "adapter.safetensors")
	if err := st.PutJSON(pipeline.PrefixMeta+"adapter", adapter.Record{Summary: sum, Curve: res.Curve}); err != nil {
		return err
	}
	fmt.Fprintf(log, "adapt: dev nDCG@10 %.4f → %.4f, KL %.4f → %.4f, source first %.1f%% → %.1f%% (epoch %d of %d, %s); wrote %s\n",
		res.Before.NDCG10, res.After.NDCG10, res.Before.KL, res.After.KL, 100*res.Before.SourceTop1, 100*res.After.SourceTop1,
		res.Best, len(res.Curve)-1, res.Stopped, filepath.Join(c.String("out"), "adapter.safetensors"))
	return nil
}
