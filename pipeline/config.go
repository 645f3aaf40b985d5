package pipeline

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/synthq/synthq/internal/redact"
)

// Config is every setting of a run. A zero field means its default (see
// EnsureDefaults), except where zero is a setting of its own: FewShot (zero-
// shot prompts), MinCandidates (no minimum), BM25K1 and BM25B, MaxRetries
// (no retry), RoundtripK (no round trip), MinTopPercentile (no top-score
// cut), Temperature and TopP. Start from DefaultConfig to get those fields' defaults too.
// Secrets carry `json:"-"`: they never reach the store, the manifest or the
// exports; URLs are redacted when a Config is encoded (MarshalJSON).
type Config struct {
	// Corpus
	Corpus      string `json:"corpus"`
	IDField     string `json:"id_field"`
	TextField   string `json:"text_field"`
	TitleField  string `json:"title_field"`
	SkipInvalid bool   `json:"skip_invalid"`

	Out   string `json:"out"`
	Store string `json:"store"`

	// Offline replaces the LLM with extractive pseudo-queries and the teacher
	// with a lexical scorer: no server at all.
	Offline bool `json:"offline"`

	// Generation
	LLMURLs         []string       `json:"llm_urls"`
	LLMModel        string         `json:"llm_model"`
	LLMAPIKey       string         `json:"-"`
	QueryTypes      []string       `json:"query_types"`
	QueriesPerType  int            `json:"queries_per_type"`
	Temperature     float64        `json:"temperature"`
	TopP            float64        `json:"top_p"`
	MaxTokens       int            `json:"max_tokens"`
	MaxPassageChars int            `json:"max_passage_chars"`
	Examples        string         `json:"examples,omitempty"`
	FewShot         int            `json:"few_shot"`
	LLMExtra        map[string]any `json:"llm_extra,omitempty"`
	MaxQueryWords   int            `json:"max_query_words"`
	MaxCopiedWords  int            `json:"max_copied_words"`
	NoN             bool           `json:"no_n,omitempty"` // one request per sample even where the server honours n
	RPM             float64        `json:"rpm,omitempty"`
	TPM             float64        `json:"tpm,omitempty"`
	PriceInput      float64        `json:"price_input,omitempty"`  // per 1M prompt tokens
	PriceOutput     float64        `json:"price_output,omitempty"` // per 1M completion tokens

	// Dedup is how duplicate passages are found before generation: "near"
	// (MinHash over word shingles, Jaccard >= DedupThreshold), "exact"
	// (equal normalised title and text) or "off". The first in id order keeps
	// its queries.
	Dedup          string  `json:"dedup"`
	DedupThreshold float64 `json:"dedup_threshold"`
	// MaxPassages > 0 asks about a seeded sample of that many passages only
	// (all passages stay retrievable).
	MaxPassages int `json:"max_passages,omitempty"`
	// Holdout > 0 keeps a seeded sample of that many passages out of
	// generation (listed in the manifest, for evaluation).
	Holdout int `json:"holdout,omitempty"`

	// Mining
	Candidates    int     `json:"candidates"`
	RoundtripK    int     `json:"roundtrip_k"`
	MinCandidates int     `json:"min_candidates"`
	BM25K1        float64 `json:"bm25_k1"`
	BM25B         float64 `json:"bm25_b"`
	// Retrievers are the first-pass runs: "bm25" and/or "dense" (one run per
	// EmbedModels entry), fused by reciprocal rank fusion with constant RRFK.
	Retrievers []string `json:"retrievers"`
	RRFK       int      `json:"rrf_k"`
	// Dense retrieval through POST /v1/embeddings. With one model, several
	// EmbedURLs are equivalent servers; with several models, EmbedURLs has
	// one URL for all or one per model. Prefixes: none, one for all, or one
	// per model.
	EmbedURLs   []string `json:"embed_urls,omitempty"`
	EmbedModels []string `json:"embed_models,omitempty"`
	EmbedAPIKey string   `json:"-"`
	EmbedBatch  int      `json:"embed_batch,omitempty"`
	// EmbedMaxTokens is the embedder's window: each text (prefix included)
	// is cut to it less 2, counted by EmbedTokenizer's tokenizer.json or
	// estimated at 3 bytes a token. Default 512 (BERT-size embedders,
	// llama.cpp's default -ub); negative: no cut. Vectors are stored under
	// the text as sent, so only texts the cut changes are embedded again.
	EmbedMaxTokens  int      `json:"embed_max_tokens,omitempty"`
	EmbedTokenizer  string   `json:"embed_tokenizer,omitempty"`
	QueryPrefixes   []string `json:"query_prefixes,omitempty"`
	PassagePrefixes []string `json:"passage_prefixes,omitempty"`
	// DenseIndex is how dense runs search the passage vectors: "exact"
	// (every vector), "approx" (an IVF index: k-means lists, DenseProbe of
	// them searched) or "" (auto: exact up to DenseAutoExact passages,
	// approx above). DenseLists and DenseProbe 0 take the defaults
	// (√passages lists, retriever.DefaultProbe).
	DenseIndex string `json:"dense_index,omitempty"`
	DenseLists int    `json:"dense_lists,omitempty"`
	DenseProbe int    `json:"dense_probe,omitempty"`

	// Teacher
	TeacherURLs   []string `json:"teacher_urls"`
	TeacherRPM    float64  `json:"teacher_rpm,omitempty"`
	TeacherAPI    string   `json:"teacher_api"`
	TeacherModel  string   `json:"teacher_model"`
	TeacherAPIKey string   `json:"-"`
	TeacherBatch  int      `json:"teacher_batch"`
	TeacherInput  string   `json:"teacher_input"`
	// TeacherMaxTokens is the teacher's window: each passage is cut (at a
	// word boundary) so that query and passage fit it together, counted by
	// TeacherTokenizer's tokenizer.json or estimated at 3 bytes a token.
	// Default 512 (bge-reranker-base/large, ms-marco MiniLM); negative: no
	// cut. Part of the teacher fingerprint.
	TeacherMaxTokens int    `json:"teacher_max_tokens"`
	TeacherTokenizer string `json:"teacher_tokenizer,omitempty"`

	// Targets and split
	ListSize          int     `json:"list_size"`
	RequireSourceTop1 bool    `json:"require_source_top1"`
	MinTopPercentile  float64 `json:"min_top_percentile"`
	Norm              string  `json:"norm"`
	DevFraction       float64 `json:"dev_fraction"`
	Seed              uint64  `json:"seed"`

	// Export
	Layout  string   `json:"layout"`
	Formats []string `json:"formats"`
	// Scores is the teacher score scale of the layouts that carry one score
	// list: "raw" or "normalised"; "" is the layout's default.
	Scores string `json:"scores,omitempty"`
	// QueryInstruction is the instruction the trained model puts before
	// every query (FlagEmbedding's `prompt`; recorded in the card).
	QueryInstruction string `json:"query_instruction,omitempty"`
	// CorpusLicense is the corpus's licence, for the dataset card.
	CorpusLicense string `json:"corpus_license,omitempty"`

	// Running
	// Shard "i/N" runs generation (and so everything after it) for the
	// passages whose id hashes to i modulo N; every shard reads the whole
	// corpus, so mining and scoring see all passages. "" is the whole corpus.
	Shard string `json:"shard,omitempty"`
	// Prepared is the folder of a prepared corpus (synthq prepare) the run
	// reads instead of the corpus file; "" reads the corpus. Not stored and
	// not part of any fingerprint: a run on a prepared corpus computes
	// exactly what a run on the corpus file computes.
	Prepared string `json:"-"`
	// Concurrency pins the requests in flight to every endpoint; 0 (auto)
	// lets each endpoint's scheduler find its own limit, up to
	// MaxConcurrency. The per-role values, when set, win for their role.
	Concurrency        int           `json:"concurrency"`
	LLMConcurrency     int           `json:"llm_concurrency,omitempty"`
	TeacherConcurrency int           `json:"teacher_concurrency,omitempty"`
	EmbedConcurrency   int           `json:"embed_concurrency,omitempty"`
	MaxConcurrency     int           `json:"max_concurrency"`
	MaxOutage          time.Duration `json:"max_outage"`
	// Grace is how long requests in flight at the first SIGINT/SIGTERM may
	// take to answer (their answers are stored); a second signal abandons
	// them.
	Grace          time.Duration `json:"grace"`
	MaxRetries     int           `json:"max_retries"`
	RequestTimeout time.Duration `json:"request_timeout"`
	RetryFailed    bool          `json:"retry_failed"`
	// TolerateFailed is the share of failed items (per query asked) a
	// finished run may have and still exit 0; above it, or with any failed
	// item at 0 (the default), it exits 3. It changes no output.
	TolerateFailed float64 `json:"tolerate_failed,omitempty"`
	Quiet          bool    `json:"-"`
	// NoOverlap runs the stages strictly in turn (for comparison: the
	// exports are the same bytes either way).
	NoOverlap bool `json:"-"`
}

// Defaults of the settings whose zero is a setting of its own (EnsureDefaults
// leaves them alone; DefaultConfig and the CLI's flags use these).
const (
	DefaultFewShot       = 3
	DefaultMinCandidates = 20
	DefaultBM25K1        = 0.9
	DefaultBM25B         = 0.4
	DefaultMaxRetries    = 8
	DefaultRoundtripK    = 20
)

// DefaultConfig is a Config with every default, the paper's settings, filled
// in: the fields whose zero means zero as well as the others.
func DefaultConfig() *Config {
	c := &Config{FewShot: DefaultFewShot, MinCandidates: DefaultMinCandidates, BM25K1: DefaultBM25K1,
		BM25B: DefaultBM25B, MaxRetries: DefaultMaxRetries, RoundtripK: DefaultRoundtripK, RequireSourceTop1: true, MinTopPercentile: 25,
		DevFraction: 0.1, Seed: 1, TeacherModel: "BAAI/bge-reranker-v2-m3", LLMModel: "meta-llama/Llama-3.1-8B-Instruct",
		TopP: 1, Temperature: 0.8, Grace: 30 * time.Second}
	c.EnsureDefaults()
	return c
}

// EnsureDefaults fills zero fields with the paper's settings and the CLI's
// defaults, except the fields whose zero is a setting (see Config).
// Booleans whose default is true are set by the CLI, not here.
func (c *Config) EnsureDefaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	defInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.IDField, "_id")
	def(&c.TextField, "text")
	def(&c.TitleField, "title")
	if c.Store == "" && c.Out != "" {
		c.Store = filepath.Join(c.Out, "store")
	}
	if len(c.QueryTypes) == 0 {
		c.QueryTypes = []string{"questions", "claims", "titles", "keywords", "msmarco", "random"}
	}
	defInt(&c.QueriesPerType, 1)
	defInt(&c.MaxTokens, 50)
	defInt(&c.MaxPassageChars, 2048)
	defInt(&c.MaxQueryWords, 20)
	defInt(&c.MaxCopiedWords, 10)
	def(&c.Dedup, "near")
	if c.DedupThreshold == 0 {
		c.DedupThreshold = 0.9
	}
	if len(c.Retrievers) == 0 {
		c.Retrievers = []string{"bm25"}
	}
	defInt(&c.RRFK, 60)
	defInt(&c.EmbedBatch, 64)
	defInt(&c.EmbedMaxTokens, 512)
	defInt(&c.TeacherMaxTokens, 512)
	defInt(&c.Candidates, 100)
	def(&c.TeacherAPI, "tei")
	defInt(&c.TeacherBatch, 32)
	def(&c.TeacherInput, "title+text")
	defInt(&c.ListSize, 20)
	def(&c.Norm, "p1p99")
	def(&c.Layout, "listwise")
	if len(c.Formats) == 0 {
		c.Formats = DefaultFormats(c.Layout)
	}
	defInt(&c.MaxConcurrency, 512)
	if c.MaxOutage == 0 {
		c.MaxOutage = 30 * time.Minute
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 60 * time.Second
	}
}

// DefaultFormats are the output formats of a layout when --format is not
// given: JSONL for the layouts whose trainers read JSONL (flagembedding,
// paper, tevatron), else Arrow and Parquet.
func DefaultFormats(layout string) []string {
	if layout == "flagembedding" || layout == "paper" || layout == "tevatron" {
		return []string{"jsonl"}
	}
	return []string{"arrow", "parquet"}
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	if err := c.validateFinite(); err != nil {
		return err
	}
	if err := c.validateNumbers(); err != nil {
		return err
	}
	if err := c.validateURLs(); err != nil {
		return err
	}
	switch {
	case c.QueriesPerType < 1:
		return fmt.Errorf("--queries-per-type must be at least 1, got %d", c.QueriesPerType)
	case c.TolerateFailed < 0 || c.TolerateFailed > 1:
		return fmt.Errorf("--tolerate-failed must be a share between 0 and 1 (0.01: 1%% of the queries asked), got %g", c.TolerateFailed)
	case c.Candidates < 1:
		return fmt.Errorf("--candidates must be at least 1, got %d", c.Candidates)
	case c.ListSize < 2:
		return fmt.Errorf("--list-size must be at least 2, got %d", c.ListSize)
	case c.DevFraction < 0 || c.DevFraction >= 1:
		return fmt.Errorf("--dev-fraction must be in [0, 1), got %g", c.DevFraction)
	case c.MinTopPercentile < 0 || c.MinTopPercentile > 100:
		return fmt.Errorf("--min-top-percentile must be in [0, 100], got %g", c.MinTopPercentile)
	case c.Concurrency < 0 || c.LLMConcurrency < 0 || c.TeacherConcurrency < 0 || c.EmbedConcurrency < 0:
		return fmt.Errorf("--concurrency (and --llm-, --teacher-, --embed-concurrency) must be auto or at least 1")
	case c.MaxConcurrency < 1:
		return fmt.Errorf("--max-concurrency must be at least 1, got %d", c.MaxConcurrency)
	case c.Temperature < 0:
		return fmt.Errorf("--temperature must not be negative, got %g", c.Temperature)
	case c.TopP < 0 || c.TopP > 1:
		return fmt.Errorf("--top-p must be in [0, 1], got %g", c.TopP)
	case c.RPM < 0 || c.TPM < 0 || c.TeacherRPM < 0:
		return fmt.Errorf("--rpm, --tpm and --teacher-rpm must not be negative")
	case c.PriceInput < 0 || c.PriceOutput < 0:
		return fmt.Errorf("--price-input and --price-output must not be negative")
	}
	if _, _, err := c.ShardOf(); err != nil {
		return err
	}
	switch c.Dedup {
	case "near", "exact", "off":
	default:
		return fmt.Errorf("--dedup must be near, exact or off, got %q", c.Dedup)
	}
	switch {
	case c.DedupThreshold <= 0 || c.DedupThreshold > 1:
		return fmt.Errorf("--dedup-threshold must be in (0, 1], got %g", c.DedupThreshold)
	case c.MaxPassages < 0 || c.Holdout < 0:
		return fmt.Errorf("--max-passages and --holdout must not be negative")
	case c.RRFK < 1:
		return fmt.Errorf("--rrf-k must be at least 1, got %d", c.RRFK)
	}
	if _, err := c.DenseRuns(); err != nil {
		return err
	}
	switch c.DenseIndex {
	case "", "exact", "approx":
	default:
		return fmt.Errorf("--dense-index must be auto, exact or approx, got %q", c.DenseIndex)
	}
	if c.DenseLists < 0 || c.DenseProbe < 0 {
		return fmt.Errorf("--dense-lists and --dense-probe must not be negative")
	}
	switch c.Norm {
	case "p1p99", "minmax", "none":
	default:
		return fmt.Errorf("--norm must be p1p99, minmax or none, got %q", c.Norm)
	}
	switch c.TeacherInput {
	case "title+text", "text":
	default:
		return fmt.Errorf("--teacher-input must be title+text or text, got %q", c.TeacherInput)
	}
	return nil
}

// ShardOf parses Shard: index i and count n (0 and 1 for the whole corpus).
func (c *Config) ShardOf() (i, n uint64, err error) {
	if c.Shard == "" {
		return 0, 1, nil
	}
	a, b, ok := strings.Cut(c.Shard, "/")
	i, err1 := strconv.ParseUint(a, 10, 32)
	n, err2 := strconv.ParseUint(b, 10, 32)
	if !ok || err1 != nil || err2 != nil || n == 0 || i >= n {
		return 0, 0, fmt.Errorf("--shard must be i/N with 0 <= i < N, got %q", c.Shard)
	}
	return i, n, nil
}

// InShard reports whether passage docID belongs to this run's shard: a
// deterministic partition by id hash, the same on every machine.
func (c *Config) InShard(docID string) bool {
	i, n, err := c.ShardOf()
	if err != nil || n == 1 {
		return err == nil
	}
	return Mix64(Hash64("shard", docID))%n == i
}

// Cost is the price of the given token counts at the configured prices
// (per 1M tokens); 0 when no price is set.
func (c *Config) Cost(promptTokens, completionTokens int64) float64 {
	return (float64(promptTokens)*c.PriceInput + float64(completionTokens)*c.PriceOutput) / 1e6
}

// Generator names what writes the queries ("offline" or the LLM model).
func (c *Config) Generator() string {
	if c.Offline {
		return "offline"
	}
	return c.LLMModel
}

// Teacher names what scores the candidates ("lexical" or api:model).
func (c *Config) Teacher() string {
	if c.Offline {
		return "lexical"
	}
	return c.TeacherAPI + ":" + c.TeacherModel
}

// Fingerprint identifies the settings that shape the exported data (no
// secrets, no paths, no concurrency). Secret-looking --llm-extra values
// enter redacted, as MarshalJSON stores them.
func (c *Config) Fingerprint() string {
	cc := *c
	cc.Corpus, cc.Out, cc.Store = "", "", ""
	cc.LLMURLs, cc.TeacherURLs, cc.EmbedURLs, cc.EmbedBatch = nil, nil, nil, 0
	cc.Concurrency, cc.MaxRetries, cc.RequestTimeout, cc.RetryFailed, cc.TeacherBatch = 0, 0, 0, false, 0
	cc.LLMConcurrency, cc.TeacherConcurrency, cc.EmbedConcurrency, cc.MaxConcurrency, cc.MaxOutage, cc.Grace = 0, 0, 0, 0, 0, 0
	cc.Shard, cc.TolerateFailed = "", 0
	cc.NoN, cc.RPM, cc.TPM, cc.TeacherRPM, cc.PriceInput, cc.PriceOutput = false, 0, 0, 0, 0, 0
	// Secret-looking --llm-extra values as the stored config shows them
	// (redacted): no hash of a credential in the manifest, and the
	// fingerprint of a config read back from the store is the run's.
	cc.LLMExtra = redact.Values(cc.LLMExtra)
	// The plain encoding (durations and concurrency as numbers, as before
	// MarshalJSON wrote them as a person reads them), so fingerprints of
	// stores made before stay the same.
	b, _ := json.Marshal(plainConfig(cc))
	return Fingerprint(string(b))
}

// FailureScope identifies the settings under which an item's failure counts:
// Fingerprint without the target, split and export settings (which `synthq
// export` changes with no server). A failure recorded under another scope
// is of another configuration: it does not count in exit status 3, the
// manifest or stats.
func (c *Config) FailureScope() string {
	cc := *c
	cc.ListSize, cc.RequireSourceTop1, cc.MinTopPercentile, cc.Norm, cc.DevFraction = 0, false, 0, "", 0
	cc.Layout, cc.Formats = "", nil
	return cc.Fingerprint()
}

// DenseAutoExact is the largest corpus --dense-index auto searches
// exactly: 100,000 passages × 768 dims is ~0.15 GFLOP a query, about
// 100 queries/s on 2 cores; above it an IVF index is ~10–50× faster.
const DenseAutoExact = 100_000

// DenseIndexFor is the dense search a corpus of n passages gets: "exact"
// or "approx".
func (c *Config) DenseIndexFor(n int) string {
	switch {
	case c.DenseIndex != "":
		return c.DenseIndex
	case n > DenseAutoExact:
		return "approx"
	}
	return "exact"
}

// DenseRun is one dense first-pass retriever: a model behind one or more
// equivalent embeddings endpoints, with its input prefixes.
type DenseRun struct {
	Model         string
	URLs          []string
	QueryPrefix   string
	PassagePrefix string
}

// DenseRuns pairs EmbedModels with their URLs and prefixes; empty unless
// Retrievers holds "dense". An error names the flag that does not fit.
func (c *Config) DenseRuns() ([]DenseRun, error) {
	bm25, dense := false, false
	for _, r := range c.Retrievers {
		switch r {
		case "bm25":
			bm25 = true
		case "dense":
			dense = true
		default:
			return nil, fmt.Errorf("--retriever: unknown %q (want bm25, dense or bm25,dense)", r)
		}
	}
	if !bm25 && !dense {
		return nil, fmt.Errorf("--retriever: none given")
	}
	if !dense {
		return nil, nil
	}
	m := len(c.EmbedModels)
	switch {
	case m == 0:
		return nil, fmt.Errorf("--retriever dense needs --embed-model")
	case len(c.EmbedURLs) == 0:
		return nil, fmt.Errorf("--retriever dense needs --embed-url (an OpenAI-compatible /v1/embeddings server: vLLM, TEI, Infinity, Ollama)")
	case m > 1 && len(c.EmbedURLs) > 1 && len(c.EmbedURLs) != m:
		return nil, fmt.Errorf("%d --embed-model values and %d --embed-url values: give one URL for all models or one per model", m, len(c.EmbedURLs))
	case len(c.QueryPrefixes) > 1 && len(c.QueryPrefixes) != m:
		return nil, fmt.Errorf("%d --query-prefix values for %d models: give one for all or one per model", len(c.QueryPrefixes), m)
	case len(c.PassagePrefixes) > 1 && len(c.PassagePrefixes) != m:
		return nil, fmt.Errorf("%d --passage-prefix values for %d models: give one for all or one per model", len(c.PassagePrefixes), m)
	}
	pick := func(vals []string, i int) string {
		switch len(vals) {
		case 0:
			return ""
		case 1:
			return vals[0]
		}
		return vals[i]
	}
	runs := make([]DenseRun, m)
	for i, model := range c.EmbedModels {
		urls := c.EmbedURLs
		if m > 1 && len(urls) > 1 {
			urls = urls[i : i+1]
		}
		runs[i] = DenseRun{Model: model, URLs: urls, QueryPrefix: pick(c.QueryPrefixes, i), PassagePrefix: pick(c.PassagePrefixes, i)}
	}
	return runs, nil
}

// ConcurrencyFor is the pinned limit of a role's endpoints ("llm",
// "teacher", "embed"), or 0 for auto.
func (c *Config) ConcurrencyFor(role string) int {
	v := map[string]int{"llm": c.LLMConcurrency, "teacher": c.TeacherConcurrency, "embed": c.EmbedConcurrency}[role]
	if v > 0 {
		return v
	}
	return c.Concurrency
}
