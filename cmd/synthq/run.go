package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/embed"
	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/internal/redact"
	"github.com/synthq/synthq/internal/window"
	"github.com/synthq/synthq/llm"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/stages"
	"github.com/synthq/synthq/teacher"
	"github.com/synthq/synthq/tokenize"
)

func runCommand() *cli.Command {
	flags := append(runFlags(), &cli.BoolFlag{Name: "report", Usage: "after the export, write OUT/report.html (see synthq report)", EnvVars: env("report")})
	return &cli.Command{
		Name:  "run",
		Usage: "run every stage: corpus → generate → filter → mine → label → export (resumes from the store)",
		Description: `Example:
   synthq run --corpus corpus.jsonl --out out/ \
     --llm-url http://localhost:8000/v1 --llm-model meta-llama/Llama-3.1-8B-Instruct \
     --teacher-url http://localhost:8080 --teacher-api tei --teacher-model BAAI/bge-reranker-v2-m3

   synthq run --offline --corpus testdata/corpus.jsonl --out out/ --min-candidates 5   # no server at all`,
		Flags:  flags,
		Before: configSource(flags),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("run", "takes no arguments, got %q (every setting is a flag)", c.Args().First())
			}
			if c.String("corpus") == "" && c.String("prepared") == "" {
				return usagef("run", "--corpus is required: the JSONL file of passages to write queries for; "+
					"to try the flow with no server: synthq run --offline --corpus testdata/corpus.jsonl --out out/ --min-candidates 5")
			}
			cfg, err := configFrom(c)
			if err != nil {
				return err
			}
			if c.Bool("dry-run") {
				return doDryRun(c.Context, cfg, c.Bool("force"), c.String("tokenizer"), c.App.Writer, c.App.ErrWriter)
			}
			if c.Bool("report") {
				if err := checkReportPath(filepath.Join(cfg.Out, "report.html"), c.Bool("force")); err != nil {
					return err
				}
			}
			err = doRun(c.Context, cfg, c.Bool("force"), c.App.ErrWriter)
			var fe failedItemsError
			if c.Bool("report") && (err == nil || errors.As(err, &fe)) {
				if rerr := runReport(c.Context, cfg, c.Bool("force"), c.App.ErrWriter); rerr != nil {
					return rerr
				}
			}
			return err
		},
	}
}

const startServers = `Start one, for example:
  vLLM:   vllm serve meta-llama/Llama-3.1-8B-Instruct --port 8000         (--llm-url http://localhost:8000/v1)
  Ollama: ollama pull llama3.1:8b && ollama serve                          (--llm-url http://localhost:11434/v1 --llm-model llama3.1:8b)
  TEI:    text-embeddings-router --model-id BAAI/bge-reranker-v2-m3 --port 8080   (--teacher-url http://localhost:8080 --teacher-api tei)
or try the whole flow with no server: --offline`

// checkInputs is what a run checks before it creates anything (the store,
// OUT) or calls a server: the corpus is a readable file, and OUT holds no
// file synthq did not write (unless force) and no link where synthq writes
// (stages.CheckOut).
func checkInputs(cfg *pipeline.Config, force bool) error {
	if cfg.Corpus == "" {
		if cfg.Prepared == "" {
			return errors.New("--corpus is required")
		}
		return stages.CheckOut(cfg.Out, cfg.Store, force)
	}
	fi, err := os.Stat(cfg.Corpus)
	if err != nil {
		return fmt.Errorf("--corpus %s: %w", cfg.Corpus, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("--corpus %s is a folder: give the JSONL file of passages", cfg.Corpus)
	}
	return stages.CheckOut(cfg.Out, cfg.Store, force)
}

// doRun runs every stage. force lets the export write beside files in OUT
// that synthq did not write (see stages.CheckOut).
func doRun(ctx context.Context, cfg *pipeline.Config, force bool, log io.Writer) (err error) {
	if cfg.Corpus == "" && cfg.Prepared == "" {
		return errors.New("--corpus is required")
	}
	if !cfg.Offline {
		var missing []string
		if len(cfg.LLMURLs) == 0 {
			missing = append(missing, "--llm-url")
		}
		if len(cfg.TeacherURLs) == 0 {
			missing = append(missing, "--teacher-url")
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s required (or --offline to run with no server).\n%s", strings.Join(missing, " and "), startServers)
		}
	}
	if err := checkInputs(cfg, force); err != nil {
		return err
	}
	corpus := stages.CorpusStage()
	var prep *pipeline.Store
	if cfg.Prepared != "" {
		p, m, err := openPrepared(cfg.Prepared, cfg)
		if err != nil {
			return err
		}
		defer p.Close()
		prep, corpus = p, stages.PreparedCorpusStage(m)
		if cfg.Corpus == "" {
			cfg.Corpus = m.Corpus // the file prepared, as the manifest names it
		}
	}
	st, err := pipeline.OpenStore(cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkShard(st, cfg); err != nil {
		return err
	}
	if err := st.PutJSON(dataset.MetaConfig, cfg); err != nil {
		return err
	}
	deps, extra, err := buildDeps(cfg, log)
	if err != nil {
		return err
	}
	env := &pipeline.Env{Store: st, Config: cfg, NoOverlap: cfg.NoOverlap, Prepared: prep, Force: force,
		Progress: pipeline.NewProgress(log, log == os.Stderr && isTerminal(os.Stderr), cfg.Quiet)}
	if s := pipeline.StopperFrom(ctx); s != nil {
		s.SetGrace(cfg.Grace)
		env.Stop = s.Soft
		ctx = httpx.WithStop(ctx, s.Soft.Done())
	}
	env.Progress.Status = func() string { return endpointStatus(deps.Clients) }
	defer saveEndpoints(st, deps.Clients)
	pw := startProgress(env)
	defer func() { pw.end(err) }()
	all := []pipeline.Stage{
		corpus, stages.GenerateStage(deps), stages.FilterStage(),
		stages.MineStage(deps), stages.LabelStage(deps), stages.ExportStage(extra),
	}
	if err := pipeline.Run(ctx, env, all); err != nil {
		return err
	}
	return summarise(env, log)
}

// checkShard refuses to go on with a store begun as another shard (a task
// resubmitted alone whose --shard auto no longer sees the whole array, or a
// store given to the wrong task).
func checkShard(st *pipeline.Store, cfg *pipeline.Config) error {
	var old pipeline.Config
	ok, err := st.GetJSON(dataset.MetaConfig, &old)
	if err != nil || !ok || old.Shard == cfg.Shard {
		return err
	}
	was, now := old.Shard, cfg.Shard
	if was == "" {
		was = "the whole corpus"
	}
	if now == "" {
		now = "the whole corpus"
	}
	return fmt.Errorf("store %s was begun as shard %s, this run is %s: give the task its own --store, or --shard %s (a Slurm task resubmitted alone: --shard auto/N)",
		st.Path(), was, now, orWhole(old.Shard))
}

func orWhole(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

// doDryRun reads the corpus into the store (no server needed; the real run
// reuses it) and reports what generation would send, without sending it.
func doDryRun(ctx context.Context, cfg *pipeline.Config, force bool, tokenizer string, out, log io.Writer) error {
	if err := checkInputs(cfg, force); err != nil {
		return err
	}
	var tok stages.TokenCounter
	if tokenizer != "" {
		t, err := tokenize.Load(tokenizer)
		if err != nil {
			return err
		}
		tok = t
	}
	st, err := pipeline.OpenStore(cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	env := &pipeline.Env{Store: st, Config: cfg,
		Progress: pipeline.NewProgress(log, log == os.Stderr && isTerminal(os.Stderr), cfg.Quiet)}
	if err := pipeline.Run(ctx, env, []pipeline.Stage{stages.CorpusStage()}); err != nil {
		return err
	}
	rep, err := stages.DryRun(ctx, st, cfg, tok)
	if err != nil {
		return err
	}
	rep.Print(out, cfg)
	return nil
}

// wroteOrKept says whether the export wrote its data files or found them in
// place, unchanged, and kept them.
func wroteOrKept(export map[string]int64) string {
	if export[stages.CountFilesKept] > 0 {
		return "kept (unchanged, sha256 checked)"
	}
	return "wrote"
}

// leftOut says which kept lists the layout left out, and why ("" if none).
func leftOut(export map[string]int64, cfg *pipeline.Config) string {
	n := export["drop_"+dataset.DropShorterThanListSize]
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d lists shorter than --list-size %d left out (the %s layout needs exactly %d passages a list)", n, cfg.ListSize, cfg.Layout, cfg.ListSize)
}

// summarise prints where the output is and turns failed items into exit 3.
func summarise(env *pipeline.Env, log io.Writer) error {
	ex := env.Counters("export").Snapshot()
	if !env.Config.Quiet {
		fmt.Fprintf(log, "%s %d train and %d dev lists to %s (manifest.json beside them)%s\n", wroteOrKept(ex), ex["rows_train"], ex["rows_dev"], env.Config.Out, leftOut(ex, env.Config))
	}
	fails, _, err := dataset.Failures(env.Store, env.Config.FailureScope())
	if err != nil {
		return err
	}
	if len(fails) == 0 {
		return nil
	}
	// The denominator: the generation slots, one query record each
	// (kept, dropped or failed). Cost: one key scan.
	asked, err := env.Store.Count(pipeline.PrefixQuery)
	if err != nil {
		return err
	}
	fe := failedItemsError{n: len(fails), asked: asked, tolerated: env.Config.TolerateFailed}
	if tol := env.Config.TolerateFailed; tol > 0 && float64(fe.n) <= tol*float64(asked) {
		fmt.Fprintf(log, "warning: done with %d failed items, %.2f%% of %d queries asked, within --tolerate-failed %g: exit 0 (see `synthq stats`; re-run with --retry-failed to try them again)\n",
			fe.n, 100*float64(fe.n)/float64(max(asked, 1)), asked, tol)
		return nil
	}
	return fe
}

// tokenCount is the count for the cut of a window: a tokenizer.json's,
// the server's /tokenize (dataset.ServerTokenizer: through hc, the role's
// HTTP client, at url), or nil for the estimate.
func tokenCount(path string, hc httpx.Doer, url, apiKey, model, role string) (func(context.Context, string) (int, error), error) {
	switch path {
	case "":
		return nil, nil
	case dataset.ServerTokenizer:
		return tokenize.NewServer(hc, url, apiKey, model, role).Count, nil
	}
	t, err := tokenize.Load(path)
	if err != nil {
		return nil, err
	}
	return window.Local(t.Count), nil
}

// buildDeps makes the generator and teacher for cfg, and a function that
// reports run facts (retries, score kind) for the manifest.
func buildDeps(cfg *pipeline.Config, log io.Writer) (*stages.Deps, func() map[string]any, error) {
	embedders, embedHTTP, err := buildEmbedders(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	embedFacts := func(m map[string]any) map[string]any {
		for i, h := range embedHTTP {
			k := "embed_retries"
			if len(embedHTTP) > 1 {
				k = fmt.Sprintf("embed%d_retries", i)
			}
			m[k] = h.Retries()
		}
		return m
	}
	if cfg.Offline {
		return &stages.Deps{Generator: llm.Offline{}, Scorer: teacher.Lexical{}, Embedders: embedders,
				EmbedWorkers: embedWorkers(embedHTTP), Clients: embedHTTP},
			func() map[string]any { return embedFacts(map[string]any{"teacher_score_kind": "lexical"}) }, nil
	}
	lo := httpOptions(cfg, "llm", cfg.LLMURLs, log)
	lo.ExtraBody, lo.Limiter, lo.TokenCost = llm.ExtraBody(cfg), httpx.NewLimiter(cfg.RPM, cfg.TPM), llm.ChatTokenCost
	llmHTTP := httpx.New(lo)
	to := httpOptions(cfg, "teacher", cfg.TeacherURLs, log)
	to.Limiter = httpx.NewLimiter(cfg.TeacherRPM, 0)
	teachHTTP := httpx.New(to)
	count, err := tokenCount(cfg.TeacherTokenizer, teachHTTP, cfg.TeacherURLs[0], cfg.TeacherAPIKey, cfg.TeacherModel, "teacher")
	if err != nil {
		return nil, nil, fmt.Errorf("--teacher-tokenizer: %w", err)
	}
	sc, err := teacher.New(teacher.Config{API: cfg.TeacherAPI, URL: cfg.TeacherURLs[0], Model: cfg.TeacherModel,
		APIKey: cfg.TeacherAPIKey, Batch: cfg.TeacherBatch, Doer: teachHTTP, Window: dataset.TeacherWindow(cfg, count)})
	if err != nil {
		return nil, nil, err
	}
	gen := llm.NewOpenAI(cfg.LLMURLs[0], cfg.LLMModel, cfg.LLMAPIKey, llmHTTP)
	gen.Log = log
	deps := &stages.Deps{
		Generator:  gen,
		Scorer:     sc,
		Embedders:  embedders,
		LLMWorkers: llmHTTP.Capacity(), TeacherWorkers: teachHTTP.Capacity(), EmbedWorkers: embedWorkers(embedHTTP),
		Clients: append([]*httpx.Client{llmHTTP, teachHTTP}, embedHTTP...),
		ProbeLLM: func(ctx context.Context) error {
			return probeAll(ctx, "LLM", cfg.LLMURLs, "/models", log)
		},
		ProbeTeacher: func(ctx context.Context) error {
			if err := probeAll(ctx, "teacher", cfg.TeacherURLs, "/health", log); err != nil {
				return err
			}
			if cfg.TeacherTokenizer == dataset.ServerTokenizer && cfg.TeacherMaxTokens > 0 {
				// A server without /tokenize stops the run before any pair is scored.
				_, err := count(ctx, "synthq")
				return err
			}
			return nil
		},
	}
	kind := sc.ScoreKind()
	return deps, func() map[string]any {
		m := embedFacts(map[string]any{"llm_retries": llmHTTP.Retries(), "teacher_retries": teachHTTP.Retries(), "teacher_score_kind": kind})
		var eps []httpx.EndpointStats
		for _, h := range append([]*httpx.Client{llmHTTP, teachHTTP}, embedHTTP...) {
			eps = append(eps, h.Stats()...)
		}
		m["endpoints"] = eps
		if s := llmHTTP.Served(); s != nil {
			m["llm_served_by_endpoint"] = s
		}
		if s := teachHTTP.Served(); s != nil {
			m["teacher_served_by_endpoint"] = s
		}
		return m
	}, nil
}

// buildEmbedders makes one embeddings client per dense run, each over its
// own HTTP client (retries, balancing over the run's URLs).
func buildEmbedders(cfg *pipeline.Config, log io.Writer) ([]stages.Embedder, []*httpx.Client, error) {
	runs, err := cfg.DenseRuns()
	if err != nil {
		return nil, nil, err
	}
	var out []stages.Embedder
	var hcs []*httpx.Client
	for _, r := range runs {
		hc := httpx.New(httpOptions(cfg, "embed", r.URLs, log))
		count, err := tokenCount(cfg.EmbedTokenizer, hc, r.URLs[0], cfg.EmbedAPIKey, r.Model, "embed")
		if err != nil {
			return nil, nil, fmt.Errorf("--embed-tokenizer: %w", err)
		}
		e, err := embed.New(embed.Config{URL: r.URLs[0], Model: r.Model, APIKey: cfg.EmbedAPIKey, Batch: cfg.EmbedBatch, Doer: hc,
			Window: dataset.EmbedWindow(cfg, count)})
		if err != nil {
			return nil, nil, err
		}
		out, hcs = append(out, e), append(hcs, hc)
	}
	return out, hcs, nil
}

// probeAll checks every endpoint: it fails only if none answers, and names
// the ones that do not (the balancer rests them once requests fail).
func probeAll(ctx context.Context, what string, urls []string, path string, log io.Writer) error {
	var bad []string
	for _, u := range urls {
		full := strings.TrimRight(u, "/") + path
		if err := httpx.Probe(ctx, full, 10*time.Second); err != nil {
			bad = append(bad, fmt.Sprintf("tried %s: %v", redact.URL(full), err))
		}
	}
	switch {
	case len(bad) == len(urls):
		return fmt.Errorf("cannot reach the %s server: %s\n%s", what, strings.Join(bad, "; "), startServers)
	case len(bad) > 0:
		fmt.Fprintf(log, "warning: %d of %d %s endpoints do not answer (%s); going on with the others\n", len(bad), len(urls), what, strings.Join(bad, "; "))
	}
	return nil
}

// httpOptions are the HTTP settings of one role's endpoints.
func httpOptions(cfg *pipeline.Config, role string, urls []string, log io.Writer) *httpx.Options {
	return &httpx.Options{MaxRetries: httpRetries(cfg.MaxRetries), Timeout: cfg.RequestTimeout, Endpoints: urls, Role: role,
		Concurrency: cfg.ConcurrencyFor(role), MaxConcurrency: cfg.MaxConcurrency, MaxOutage: cfg.MaxOutage, Log: log}
}

// embedWorkers is the worker-pool size that fills the largest embeddings
// fleet.
func embedWorkers(hcs []*httpx.Client) int {
	n := 0
	for _, h := range hcs {
		n = max(n, h.Capacity())
	}
	return n
}

// endpointStatus is the progress line's view of the endpoints: per role,
// requests in flight, the limit, rate, refusals and errors, and "waiting"
// while every endpoint of the role is down.
func endpointStatus(hcs []*httpx.Client) string {
	var parts []string
	for _, h := range hcs {
		for _, s := range h.Stats() {
			if s.Requests == 0 {
				continue
			}
			p := fmt.Sprintf("%s %s: %d/%d in flight, %.1f/s", s.Role, hostOf(s.URL), s.InFlight, s.Concurrency, s.Rate)
			if s.Refusals > 0 {
				p += fmt.Sprintf(", %d refused", s.Refusals)
			}
			if s.Errors > 0 {
				p += fmt.Sprintf(", %d errors", s.Errors)
			}
			if s.Down {
				p += ", DOWN (waiting)"
			}
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "; ")
}

func hostOf(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	if i := strings.IndexByte(u, '/'); i >= 0 {
		u = u[:i]
	}
	return u
}

// saveEndpoints stores every endpoint's figures under meta/endpoints (URLs
// without credentials), for the manifest, `synthq stats` and the report,
// when the run sent requests: a cached re-run keeps the figures of the run
// that did the work.
func saveEndpoints(st *pipeline.Store, hcs []*httpx.Client) {
	var all []httpx.EndpointStats
	sent := false
	for _, h := range hcs {
		for _, e := range h.Stats() {
			all = append(all, e)
			sent = sent || e.Requests > 0
		}
	}
	if sent {
		st.PutJSON(dataset.MetaEndpoints, all)
	}
}
