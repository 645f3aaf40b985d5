package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/prompts"
	"github.com/synthq/synthq/stages"
)

// env names the SYNTHQ_ variable of a flag: --llm-url -> SYNTHQ_LLM_URL.
func env(flag string) []string {
	return []string{"SYNTHQ_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))}
}

func str(name, value, usage string) cli.Flag {
	return altsrc.NewStringFlag(&cli.StringFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)})
}

func integer(name string, value int, usage string) cli.Flag {
	return altsrc.NewIntFlag(&cli.IntFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)})
}

func float(name string, value float64, usage string) cli.Flag {
	return altsrc.NewFloat64Flag(&cli.Float64Flag{Name: name, Value: value, Usage: usage, EnvVars: env(name), Action: finite(name)})
}

// finite is the action of every number flag: NaN and ±Inf parse as
// numbers (strconv.ParseFloat) but pass every range check unnoticed. They
// are a malformed value, as "abc" is: a usage error (exit 2) naming the
// flag, before anything is opened.
func finite(name string) func(*cli.Context, float64) error {
	return func(c *cli.Context, v float64) error {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			cmd := ""
			if c != nil && c.Command != nil {
				cmd = c.Command.Name
			}
			return usagef(cmd, "--%s must be a finite number, got %g", name, v)
		}
		return nil
	}
}

func strs(name, usage string) cli.Flag {
	return altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: name, Usage: usage, EnvVars: env(name)})
}

// rawStrs is a repeatable flag whose values keep their spaces ("query: ").
func rawStrs(name, usage string) cli.Flag {
	return altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: name, Usage: usage, EnvVars: env(name), KeepSpace: true})
}

func boolean(name string, value bool, usage string) cli.Flag {
	return altsrc.NewBoolFlag(&cli.BoolFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)})
}

func duration(name string, value time.Duration, usage string) cli.Flag {
	return altsrc.NewDurationFlag(&cli.DurationFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)})
}

// secret flags are never written anywhere; their values come from the flag
// or the environment only (not from the YAML file, which tends to be shared).
func secret(name, usage string) cli.Flag {
	return &cli.StringFlag{Name: name, Usage: usage, EnvVars: env(name)}
}

func configFlag() cli.Flag {
	return &cli.StringFlag{Name: "config", Usage: "YAML file of flag values (keys are flag names); precedence: flag > env > file > default", EnvVars: env("config")}
}

func corpusFlags() []cli.Flag {
	return []cli.Flag{
		str("corpus", "", "corpus JSONL (BEIR corpus.jsonl or generic), plain or .gz"),
		str("id-field", "_id", "JSON field holding the passage id"),
		str("text-field", "text", "JSON field holding the passage text"),
		str("title-field", "title", "JSON field holding the passage title (optional in each line)"),
		boolean("skip-invalid", false, "skip malformed corpus lines (counted in the manifest) instead of stopping"),
	}
}

// retrieverFlags are the first-pass settings that run and eval share.
func retrieverFlags() []cli.Flag {
	return []cli.Flag{
		float("bm25-k1", pipeline.DefaultBM25K1, "BM25 k1"),
		float("bm25-b", pipeline.DefaultBM25B, "BM25 b"),
		str("retriever", "bm25", "first-pass retrieval: bm25 | dense | bm25,dense (runs fused by reciprocal rank fusion)"),
		integer("rrf-k", 60, "reciprocal rank fusion constant k: score = sum of 1/(k + rank)"),
		strs("embed-url", "embeddings server base URL, e.g. http://localhost:8000/v1 (vLLM) or http://localhost:8080 (TEI); repeat for several servers of one model, or give one per --embed-model"),
		strs("embed-model", "embedding model name; repeat for several dense runs fused by RRF"),
		secret("embed-api-key", "API key for the embeddings server (env SYNTHQ_EMBED_API_KEY); never logged or stored"),
		integer("embed-batch", 64, "texts per embeddings request (halved automatically if the server refuses the size)"),
		integer("embed-max-tokens", 512, "the embedder's window: each text (prefix included) is cut at a word boundary to fit it, counted by --embed-tokenizer or estimated at 3 bytes a token (-1: no cut)"),
		str("embed-tokenizer", "", "the embedding model's tokenizer.json (byte-level BPE) for exact counts in the --embed-max-tokens cut, or \"server\" to count with the embeddings server's own POST /tokenize (llama.cpp, vLLM, TEI; a request per text) (default: the estimate)"),
		rawStrs("query-prefix", "text put before every query for the embedding model, e.g. \"query: \" (E5); repeat once per --embed-model"),
		rawStrs("passage-prefix", "text put before every passage for the embedding model, e.g. \"passage: \" (E5); repeat once per --embed-model"),
		str("dense-index", "auto", "dense search: exact | approx (IVF: k-means lists, the nearest --dense-probe searched; recall against exact is measured on a sample and recorded) | auto (exact up to 100,000 passages)"),
		integer("dense-lists", 0, "IVF lists (k-means partitions) of --dense-index approx (0: √passages)"),
		integer("dense-probe", 0, "IVF lists searched per query (0: a third of the lists, at least 32)"),
	}
}

// applyRetriever copies the retrieverFlags into cfg.
func applyRetriever(c *cli.Context, cfg *pipeline.Config) {
	cfg.BM25K1, cfg.BM25B = c.Float64("bm25-k1"), c.Float64("bm25-b")
	cfg.Retrievers, cfg.RRFK = splitList([]string{c.String("retriever")}), c.Int("rrf-k")
	cfg.EmbedURLs, cfg.EmbedModels = splitList(c.StringSlice("embed-url")), splitList(c.StringSlice("embed-model"))
	cfg.EmbedAPIKey, cfg.EmbedBatch = c.String("embed-api-key"), c.Int("embed-batch")
	cfg.EmbedMaxTokens, cfg.EmbedTokenizer = c.Int("embed-max-tokens"), c.String("embed-tokenizer")
	cfg.QueryPrefixes, cfg.PassagePrefixes = c.StringSlice("query-prefix"), c.StringSlice("passage-prefix")
	cfg.DenseIndex, cfg.DenseLists, cfg.DenseProbe = c.String("dense-index"), c.Int("dense-lists"), c.Int("dense-probe")
	if cfg.DenseIndex == "auto" {
		cfg.DenseIndex = "" // the default: stores made before keep their fingerprint
	}
}

func targetFlags() []cli.Flag {
	return []cli.Flag{
		integer("list-size", 20, "passages per exported list (top by teacher score, source included)"),
		boolean("require-source-top1", true, "keep a query only if the teacher ranks its source passage first"),
		float("min-top-percentile", 25, "drop a query whose top teacher score is below this percentile of all candidate scores (0 disables)"),
		str("norm", "p1p99", "teacher score normalisation: p1p99 | minmax | none"),
		float("dev-fraction", 0.1, "fraction of source passages whose queries go to the dev split"),
		integer("seed", 1, "seed of every random choice (few-shot draws, sampling seeds, split)"),
		str("layout", "listwise", "output layout: listwise | sentence-transformers | flagembedding (JSONL) | paper (JSONL) | tevatron"),
		str("format", "", "comma list of output formats: arrow, parquet, jsonl (default arrow,parquet; jsonl for the flagembedding, paper and tevatron layouts)"),
		str("scores", "", "teacher score scale of the layouts with one score list: raw | normalised (default: raw for flagembedding, normalised for the others; listwise carries both)"),
		str("query-instruction", "", "instruction the trained model puts before queries, e.g. \"Represent this sentence for searching relevant passages: \" (FlagEmbedding's prompt field; recorded in the card)"),
		str("corpus-license", "", "licence of the corpus, for the dataset card (OUT/README.md), e.g. cc-by-4.0"),
	}
}

// runValueFlags are the target flags whose default in export and report is
// the value the run used.
var runValueFlags = []string{"list-size", "require-source-top1", "min-top-percentile", "norm", "dev-fraction", "seed",
	"layout", "query-instruction", "corpus-license"}

func runFlags() []cli.Flag {
	fl := []cli.Flag{configFlag(),
		str("out", "out", "output directory"),
		boolean("force", false, "write into an --out folder that holds files synthq did not write (those of the names synthq writes are replaced; none is deleted)"),
		str("store", "", "Badger store directory (default OUT/store)"),
		boolean("offline", false, "no server at all: extractive pseudo-queries and a lexical teacher (for trying the flow)"),
		strs("llm-url", "OpenAI-compatible base URL, e.g. http://localhost:8000/v1 (vLLM) or http://localhost:11434/v1 (Ollama); repeat (or comma-separate) for several servers of the same model"),
		str("llm-model", "meta-llama/Llama-3.1-8B-Instruct", "model name the LLM server knows"),
		secret("llm-api-key", "API key for the LLM server (env SYNTHQ_LLM_API_KEY); never logged or stored"),
		str("query-types", strings.Join(prompts.Types, ","), "comma list of query types: "+strings.Join(prompts.Types, ", ")),
		integer("queries-per-type", 1, "queries per (passage, type)"),
		float("temperature", 0.8, "sampling temperature (0 reaches the server as 0)"),
		float("top-p", 1, "nucleus sampling top_p (0 reaches the server as 0)"),
		boolean("no-n", false, "one request per sample even where the server honours the n parameter"),
		float("rpm", 0, "at most this many LLM requests a minute, retries included (0: no limit)"),
		float("tpm", 0, "at most this many LLM tokens a minute (prompt estimate + max tokens; 0: no limit)"),
		float("price-input", 0, "price per 1M prompt tokens, for the cost in stats, the manifest and --dry-run"),
		float("price-output", 0, "price per 1M completion tokens"),
		boolean("dry-run", false, "render every prompt and print requests, tokens and cost; call no server"),
		str("tokenizer", "", "Hugging Face tokenizer.json for exact prompt token counts in --dry-run (default: an estimate)"),
		integer("max-tokens", 50, "max completion tokens per query"),
		integer("max-passage-chars", 2048, "passages are cut to this many characters at a word boundary"),
		str("examples", "", "JSONL few-shot pool {\"type\",\"passage\",\"query\"} replacing the built-in examples of its types"),
		integer("few-shot", pipeline.DefaultFewShot, "examples per prompt"),
		str("llm-extra", "", "JSON object of extra request body keys, e.g. '{\"top_k\":20}' for vLLM"),
		integer("max-query-words", 20, "drop parsed queries longer than this many words"),
		integer("max-copied-words", 10, "drop queries repeating a run of more than this many passage words"),
		str("dedup", "near", "duplicate passages before generation (they get no queries): near (MinHash over word 5-shingles, Jaccard >= --dedup-threshold) | exact (equal normalised title and text) | off"),
		float("dedup-threshold", 0.9, "Jaccard similarity of word shingles at which --dedup near calls two passages duplicates"),
		integer("max-passages", 0, "generate for a seeded sample of this many passages (0: all); every passage stays retrievable"),
		integer("holdout", 0, "keep a seeded sample of this many passages out of generation, listed in the manifest (for evaluation)"),
		integer("candidates", 100, "first-pass candidates per query"),
		integer("roundtrip-k", pipeline.DefaultRoundtripK, "keep a query only if its source passage is in the first-pass top k (0 disables)"),
		integer("min-candidates", pipeline.DefaultMinCandidates, "drop queries with fewer candidates"),
		strs("teacher-url", "teacher server base URL, e.g. http://localhost:8080 (TEI); repeat for several servers of the same model"),
		float("teacher-rpm", 0, "at most this many teacher requests a minute (0: no limit)"),
		str("teacher-api", "tei", "teacher API: tei (POST /rerank) | cohere (POST /v1/rerank: vLLM, Infinity, Jina, Cohere) | vllm-score (POST /score)"),
		str("teacher-model", "BAAI/bge-reranker-v2-m3", "teacher model name (sent where the API takes one)"),
		secret("teacher-api-key", "API key for the teacher server (env SYNTHQ_TEACHER_API_KEY); never logged or stored"),
		integer("teacher-batch", 32, "passages per teacher request"),
		integer("teacher-max-tokens", 512, "the teacher's window: each passage is cut at a word boundary so that query and passage fit it, counted by --teacher-tokenizer or estimated at 3 bytes a token (-1: no cut)"),
		str("teacher-tokenizer", "", "the teacher model's tokenizer.json (byte-level BPE) for exact counts in the --teacher-max-tokens cut, or \"server\" to count with the teacher's own POST /tokenize (llama.cpp, vLLM, TEI; a request per text) (default: the estimate)"),
		str("teacher-input", "title+text", "what the teacher reads of a passage: title+text | text"),
		str("shard", "", "i/N: generate for this machine's share of the passages (by id hash); then merge the N stores with synthq export --merge. auto/N (or auto) takes i from the scheduler: SLURM_ARRAY_TASK_ID (Slurm job arrays) or JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs)"),
		str("prepared", "", "folder made by synthq prepare: read its passages, selection and passage vectors (read-only, shared by every shard) instead of reading and embedding the corpus"),
		str("concurrency", "auto", "requests in flight to each endpoint: auto (each endpoint's limit found from its throughput and overload answers) or a number pinning every endpoint"),
		str("llm-concurrency", "", "like --concurrency, for the LLM endpoints only"),
		str("teacher-concurrency", "", "like --concurrency, for the teacher endpoints only"),
		str("embed-concurrency", "", "like --concurrency, for the embeddings endpoints only"),
		integer("max-concurrency", 512, "with auto, the most requests in flight to one endpoint"),
		duration("max-outage", 30*time.Minute, "how long a role's endpoints may all be unreachable before the run stops (it resumes when re-run)"),
		duration("grace", 30*time.Second, "at SIGINT/SIGTERM, how long requests in flight may take to answer (answers are stored); a second signal abandons them"),
		integer("max-retries", pipeline.DefaultMaxRetries, "retries of a failed request (429, 5xx, timeouts, resets, invalid JSON)"),
		duration("request-timeout", 60*time.Second, "timeout of one request attempt"),
		boolean("retry-failed", false, "try again the items recorded as failed by an earlier run"),
		float("tolerate-failed", 0, "share of failed items (per query asked) under which a finished run exits 0 instead of 3 (e.g. 0.01 for a shard on a scheduler, where exit 3 fails the task and blocks the merge)"),
		boolean("no-overlap", false, "run the stages strictly in turn instead of mining and scoring queries as soon as they are written (same output, slower)"),
		boolean("quiet", false, "no progress output"),
	}
	fl = append(fl, corpusFlags()...)
	fl = append(fl, retrieverFlags()...)
	return append(fl, targetFlags()...)
}

// configFrom builds a Config from the parsed flags.
func configFrom(c *cli.Context) (*pipeline.Config, error) {
	types, err := prompts.ParseTypes(c.String("query-types"))
	if err != nil {
		return nil, fmt.Errorf("--query-types: %w", err)
	}
	cfg := &pipeline.Config{
		Corpus: c.String("corpus"), IDField: c.String("id-field"), TextField: c.String("text-field"),
		TitleField: c.String("title-field"), SkipInvalid: c.Bool("skip-invalid"),
		Out: c.String("out"), Store: c.String("store"), Offline: c.Bool("offline"),
		LLMURLs: splitList(c.StringSlice("llm-url")), LLMModel: c.String("llm-model"), LLMAPIKey: c.String("llm-api-key"),
		QueryTypes: types, QueriesPerType: c.Int("queries-per-type"), Temperature: c.Float64("temperature"),
		TopP: c.Float64("top-p"), MaxTokens: c.Int("max-tokens"), MaxPassageChars: c.Int("max-passage-chars"),
		Examples: c.String("examples"), FewShot: c.Int("few-shot"),
		MaxQueryWords: c.Int("max-query-words"), MaxCopiedWords: c.Int("max-copied-words"),
		Dedup: c.String("dedup"), Candidates: c.Int("candidates"), RoundtripK: c.Int("roundtrip-k"), MinCandidates: c.Int("min-candidates"),
		DedupThreshold: c.Float64("dedup-threshold"), MaxPassages: c.Int("max-passages"), Holdout: c.Int("holdout"),
		TeacherURLs: splitList(c.StringSlice("teacher-url")), TeacherRPM: c.Float64("teacher-rpm"),
		NoN: c.Bool("no-n"), RPM: c.Float64("rpm"), TPM: c.Float64("tpm"),
		PriceInput: c.Float64("price-input"), PriceOutput: c.Float64("price-output"), TeacherAPI: c.String("teacher-api"), TeacherModel: c.String("teacher-model"),
		TeacherAPIKey: c.String("teacher-api-key"), TeacherBatch: c.Int("teacher-batch"), TeacherInput: c.String("teacher-input"),
		TeacherMaxTokens: c.Int("teacher-max-tokens"), TeacherTokenizer: c.String("teacher-tokenizer"),
		MaxConcurrency: c.Int("max-concurrency"), MaxOutage: c.Duration("max-outage"), Grace: c.Duration("grace"),
		MaxRetries: c.Int("max-retries"), RequestTimeout: c.Duration("request-timeout"),
		RetryFailed: c.Bool("retry-failed"), TolerateFailed: c.Float64("tolerate-failed"), Quiet: c.Bool("quiet"), NoOverlap: c.Bool("no-overlap"), Shard: c.String("shard"),
		Prepared: c.String("prepared"),
	}
	shard, err := pipeline.ResolveShard(cfg.Shard, os.Getenv)
	if err != nil {
		return nil, err
	}
	cfg.Shard = shard
	if cfg.Prepared != "" {
		cfg.Prepared = filepath.Clean(cfg.Prepared)
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"concurrency", &cfg.Concurrency}, {"llm-concurrency", &cfg.LLMConcurrency},
		{"teacher-concurrency", &cfg.TeacherConcurrency}, {"embed-concurrency", &cfg.EmbedConcurrency}} {
		n, err := parseConcurrency(c.String(f.name))
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", f.name, err)
		}
		*f.dst = n
	}
	if cfg.Offline {
		// No LLM and no cross-encoder: the manifest and report list none.
		cfg.LLMModel, cfg.TeacherModel, cfg.TeacherAPI = "", "", "lexical"
	}
	cfg.Out = filepath.Clean(cfg.Out)
	if cfg.Store != "" {
		cfg.Store = filepath.Clean(cfg.Store)
	}
	applyRetriever(c, cfg)
	if err := applyTargets(c, cfg, false); err != nil {
		return nil, err
	}
	if s := c.String("llm-extra"); s != "" {
		if err := json.Unmarshal([]byte(s), &cfg.LLMExtra); err != nil {
			return nil, fmt.Errorf("--llm-extra: want a JSON object: %w", err)
		}
	}
	// Every field holds a flag's value (given or the flag's default), so a
	// zero here was given: validate before EnsureDefaults would replace it.
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.EnsureDefaults()
	return cfg, stages.CheckExport(cfg)
}

// applyTargets copies the target flags into cfg; with onlySet, only those
// given on the command line or in the environment (export keeps the run's
// values for the rest).
func applyTargets(c *cli.Context, cfg *pipeline.Config, onlySet bool) error {
	set := func(name string) bool { return !onlySet || c.IsSet(name) }
	if set("list-size") {
		cfg.ListSize = c.Int("list-size")
	}
	if set("require-source-top1") {
		cfg.RequireSourceTop1 = c.Bool("require-source-top1")
	}
	if set("min-top-percentile") {
		cfg.MinTopPercentile = c.Float64("min-top-percentile")
	}
	if set("norm") {
		cfg.Norm = c.String("norm")
	}
	if set("dev-fraction") {
		cfg.DevFraction = c.Float64("dev-fraction")
	}
	if set("seed") {
		if c.Int("seed") < 0 {
			return fmt.Errorf("--seed must not be negative, got %d", c.Int("seed"))
		}
		cfg.Seed = uint64(c.Int("seed"))
	}
	if set("layout") {
		cfg.Layout = c.String("layout")
		if !c.IsSet("format") {
			cfg.Formats = nil // the layout's default
		}
		if !c.IsSet("scores") {
			cfg.Scores = "" // the layout's default
		}
	}
	if set("scores") {
		cfg.Scores = c.String("scores")
	}
	if set("query-instruction") {
		cfg.QueryInstruction = c.String("query-instruction")
	}
	if set("corpus-license") {
		cfg.CorpusLicense = c.String("corpus-license")
	}
	if set("format") {
		cfg.Formats = splitList([]string{c.String("format")})
	}
	if len(cfg.Formats) == 0 {
		cfg.Formats = pipeline.DefaultFormats(cfg.Layout)
	}
	return nil
}

// httpRetries is --max-retries as httpx takes it (there 0 means the default
// and a negative number none).
func httpRetries(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// splitList flattens comma-separated values and drops empty ones.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// isTerminal reports whether f is a terminal (progress bars) or not (log lines).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// parseConcurrency reads "auto" (or "") as 0 and a positive whole number as
// itself.
func parseConcurrency(v string) (int, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "auto" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("want auto or a whole number of at least 1, got %q", v)
	}
	return n, nil
}
