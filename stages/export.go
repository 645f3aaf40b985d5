package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/prompts"
)

// Version is synthq's version, written into the schema metadata and manifest.
const Version = "0.1.0"

// CountFilesKept is the export counter of data files found in OUT exactly
// as the store and settings give them, and kept instead of written again.
const CountFilesKept = "files_kept"

// ExportStage applies the targets (filters, normalisation, split) and writes
// the dataset in the configured layout and formats (see the layout_*.go
// files), OUT/README.md (a Hugging Face dataset card) and OUT/manifest.json.
// Arrow files are IPC streams (what Hugging Face datasets opens); Parquet
// is zstd. Rows are sorted by qid and streamed in record batches of 1024:
// memory does not grow with the number of rows. The export is one set:
// every file is written and synced in a staging folder inside OUT and only
// then moved into place, manifest last, and the files of an earlier export
// that this one did not write are removed; a failed or killed export
// leaves the previous set as it was. The same store always exports the same
// bytes; when the data files in OUT are already those bytes (checked by
// sha256 against the store's record of its last export), they are kept and
// only the card and the manifest are written (see export_reuse.go).
func ExportStage(extra func() map[string]any) pipeline.Stage {
	return pipeline.Stage{Name: "export", Doc: "write the dataset files, the dataset card and the manifest",
		Reads: []string{pipeline.PrefixDoc, pipeline.PrefixLabel}, Run: func(ctx context.Context, env *pipeline.Env) error {
			return runExport(ctx, env, extra)
		}}
}

func runExport(ctx context.Context, env *pipeline.Env, extra func() map[string]any) error {
	return exportFrom(ctx, env, dataset.StoreLabels(env.Store), nil, extra)
}

// saveTargets keeps the last export's targets in the store, for inspect.
func saveTargets(st *pipeline.Store, t *dataset.Targets) error {
	return st.PutJSON(dataset.MetaTargets, t)
}

// layoutOf is the layout of cfg with its settings.
func layoutOf(cfg *pipeline.Config) (layout, error) {
	l, err := layoutNamed(cfg.Layout)
	if fe, ok := l.(flagEmbedding); ok {
		fe.prompt = cfg.QueryInstruction
		l = fe
	}
	return l, err
}

// exportFrom writes the dataset from labels; passages are read from
// env.Store. stats, when given, replace the store's for the manifest.
func exportFrom(ctx context.Context, env *pipeline.Env, labels dataset.Labels, stats map[string]pipeline.StageStats, extra func() map[string]any) error {
	cfg, st := env.Config, env.Store
	c := env.Counters("export")
	start := time.Now()
	if err := CheckExport(cfg); err != nil {
		return err
	}
	lay, err := layoutOf(cfg)
	if err != nil {
		return err
	}
	scores, err := scoresOf(cfg)
	if err != nil {
		return err
	}
	t, err := dataset.TargetsOf(ctx, labels, cfg)
	if err != nil {
		return err
	}
	for k, v := range t.DropCounts() {
		c.Add(k, v)
	}
	if stats == nil { // one store (not a merge): remember the targets for inspect
		if err := saveTargets(st, t); err != nil {
			return err
		}
	}
	md := map[string]string{
		"synthq_version":     Version,
		"layout":             cfg.Layout,
		"generator":          cfg.Generator(),
		"teacher":            cfg.Teacher(),
		"config_fingerprint": cfg.Fingerprint(),
		"norm":               cfg.Norm,
	}
	if scores != "" {
		md["scores"] = scores
	}
	if cfg.QueryInstruction != "" {
		md["query_instruction"] = cfg.QueryInstruction
	}
	schema := lay.schema(md, cfg.ListSize)
	var digest string
	if stats == nil { // one store: the files may be those of its last export
		if digest, err = exportDigest(ctx, st, cfg, labels); err != nil {
			return err
		}
	}
	set, err := newFileSet(cfg.Out, st.Path(), env.Force)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			set.abort()
		}
	}()
	bar := env.Progress.Start("export", int64(t.Kept))
	defer bar.Finish()
	var rec exportRecord
	kept := false
	if digest != "" {
		if rec, kept, err = reusableExport(st, cfg.Out, digest); err != nil {
			return err
		}
	}
	if kept {
		for _, f := range rec.Files {
			set.keep(f.Name)
		}
		bar.Add(int64(t.Kept))
		c.Add(CountFilesKept, int64(len(rec.Files)))
	} else {
		rec = exportRecord{Digest: digest}
		if rec.Counts, err = writeRows(ctx, set, labels, lay, schema, t, cfg, scores, st, env.Prepared, env.Progress.Warnf, bar); err != nil {
			return err
		}
		rec.Files = set.dataFiles()
	}
	rows := map[string]int{"train": int(rec.Counts["rows_train"]), "dev": int(rec.Counts["rows_dev"])}
	for k, v := range rec.Counts {
		c.Add(k, v)
	}
	m, err := newManifest(env, t, md, stats, time.Since(start), extra)
	if err != nil {
		return err
	}
	m.Files, m.FilesKept = rec.Files, kept
	var corpus dataset.CorpusMeta
	if _, err := st.GetJSON(dataset.MetaCorpus, &corpus); err != nil {
		return err
	}
	card := datasetCard(cardInput{cfg: cfg, layout: lay, schema: schema, scores: scores, manifest: m, rows: rows, corpus: corpus})
	if err := set.writeFile("README.md", card); err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	if err := set.writeFile("manifest.json", append(b, '\n')); err != nil {
		return err
	}
	if err := set.commit(); err != nil {
		return err
	}
	committed = true
	if digest != "" && !kept {
		if err := st.PutJSON(exportRecordKey, rec); err != nil {
			return err
		}
	}
	if stats == nil { // one store: what this folder holds, for stats
		return recordExport(env, time.Since(start))
	}
	return nil
}

// writeRows writes every kept list of labels into train and dev files staged
// in set and returns the export counters the rows give: rows_train, rows_dev
// and the lists dropped for the layout. On error its writers are released;
// the caller aborts set.
func writeRows(ctx context.Context, set *fileSet, labels dataset.Labels, lay layout, schema *arrow.Schema,
	t *dataset.Targets, cfg *pipeline.Config, scores string, st, prep *pipeline.Store, warn func(string, ...any), bar *pipeline.Bar) (_ map[string]int64, err error) {
	counts := map[string]int64{}
	mem := memory.NewGoAllocator()
	writers := map[string]*splitWriter{}
	defer func() {
		if err != nil {
			for _, w := range writers {
				w.abort()
			}
		}
	}()
	for _, name := range []string{"train", "dev"} {
		w, err := newSplitWriter(set, name, lay, cfg.Formats, schema, mem)
		if err != nil {
			return nil, err
		}
		writers[name] = w
	}
	src := openPassages(st, prep, warn)
	defer src.close()
	budget := 64 << 20 // a miss costs a Badger lookup
	if src.file != nil {
		budget = 16 << 20 // a miss costs one pread from the page cache
	}
	passages := newPassageCache(src, budget, func(p dataset.Passage) dataset.Passage {
		p.Line, p.Hash = 0, 0
		return p
	}, func(p dataset.Passage) int { return len(p.Title) + len(p.Text) })
	var r exportRow
	err = labels(ctx, func(qid string, v []byte) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l, err := dataset.DecodeChecked[dataset.Labelled](pipeline.PrefixLabel+qid, v)
		var bad *dataset.BadRecordError
		if errors.As(err, &bad) {
			// Counted as drop_invalid_record by the targets; recorded
			// here with its key and what is wrong (a run computes it again).
			bar.Add(1)
			return dataset.RecordFailure(st, dataset.FailKey("export/"+bad.Key), dataset.Failure{Stage: "export", Item: bad.Key,
				Reason: bad.Problem.Error() + " (dropped; `synthq run` computes the list again)", Settings: cfg.FailureScope()})
		}
		if err != nil {
			return err
		}
		idx, drop := t.Row(&l, cfg)
		if drop != "" {
			return nil
		}
		if lay.fullOnly() && len(idx) < cfg.ListSize {
			// The consumer needs exactly --list-size passages per list.
			counts["drop_"+dataset.DropShorterThanListSize]++
			bar.Add(1) // the bar counts the lists looked at, so it ends at 100%
			return nil
		}
		if err := fillRow(&r, passages, qid, t.Split(l.DocID), &l, idx, t, cfg, scores); err != nil {
			return err
		}
		bar.Add(1)
		return writers[r.Split].add(&r)
	})
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"train", "dev"} {
		if err := writers[name].close(); err != nil {
			return nil, err
		}
		counts["rows_"+name] = int64(writers[name].rows)
	}
	return counts, nil
}

// fillRow builds the exported list of l: the passages at idx (top by teacher
// score, source first), their texts (title and text, as the model reads
// them, and each apart), normalised and raw scores, the scale the layout
// writes (scores), and first-pass ranks. r's slices are reused.
func fillRow(r *exportRow, passages *passageCache[dataset.Passage], qid, split string, l *dataset.Labelled, idx []int, t *dataset.Targets, cfg *pipeline.Config, scores string) error {
	*r = exportRow{QID: qid, Query: l.Query, Type: l.Type, Source: l.DocID, Split: split,
		DocIDs: r.DocIDs[:0], Texts: r.Texts[:0], Titles: r.Titles[:0], Bodies: r.Bodies[:0],
		Scores: r.Scores[:0], Raw: r.Raw[:0], Ranks: r.Ranks[:0]}
	for _, i := range idx {
		r.DocIDs = append(r.DocIDs, l.DocIDs[i])
	}
	ps := make([]dataset.Passage, len(idx))
	if err := passages.getAll(r.DocIDs, ps); err != nil {
		return fmt.Errorf("query %s: %w", qid, err)
	}
	for k, i := range idx {
		p := ps[k]
		r.Texts = append(r.Texts, p.Full())
		r.Titles = append(r.Titles, p.Title)
		r.Bodies = append(r.Bodies, p.Text)
		r.Scores = append(r.Scores, t.Normalise(l.Raw[i], cfg))
		r.Raw = append(r.Raw, l.Raw[i])
		r.Ranks = append(r.Ranks, l.Ranks[i])
	}
	r.Teacher = r.Scores
	if scores == ScoresRaw {
		r.Teacher = r.Raw
	}
	return nil
}

// Manifest is OUT/manifest.json: what was run, with what, and what came out.
type Manifest struct {
	SynthqVersion    string                         `json:"synthq_version"`
	Generator        string                         `json:"generator"`
	Teacher          string                         `json:"teacher"`
	TeacherScoreKind string                         `json:"teacher_score_kind,omitempty"`
	TeacherScoreNote string                         `json:"teacher_score_note,omitempty"`
	Config           *pipeline.Config               `json:"config"`
	Fingerprint      string                         `json:"config_fingerprint"`
	Templates        map[string]string              `json:"templates"`
	FewShotPool      string                         `json:"few_shot_pool"`
	Targets          *dataset.Targets               `json:"targets"`
	Stages           map[string]pipeline.StageStats `json:"stages"`
	Rows             map[string]int64               `json:"rows"`
	Failures         int                            `json:"failures"`
	Tokens           TokenUse                       `json:"tokens"`
	Run              map[string]any                 `json:"run,omitempty"`
	// Holdout lists the passages kept out of generation (--holdout), sorted.
	Holdout []string `json:"holdout_passages,omitempty"`
	// DuplicatePassages is how many passages got no queries as duplicates.
	DuplicatePassages int               `json:"duplicate_passages"`
	SchemaMetadata    map[string]string `json:"schema_metadata"`
	ExportSeconds     float64           `json:"export_seconds"`
	// Files are the data files of the export with their sizes and sha256,
	// sorted by name. FilesKept says they were already in OUT, exactly as
	// the store and settings give them, and were kept rather than written
	// again.
	Files     []ExportFile `json:"files"`
	FilesKept bool         `json:"files_kept,omitempty"`
	// DenseIndex says how each dense run searched: exact, or an
	// approximate index with its recall@K against exact on a sample.
	DenseIndex []dataset.DenseIndexInfo `json:"dense_index,omitempty"`
}

// scoreNotes say what teacher_raw holds for each kind of teacher API.
var scoreNotes = map[string]string{
	"logits":          "teacher_raw holds the cross-encoder's raw logits (TEI with raw_scores: true)",
	"relevance":       "teacher_raw holds the API's relevance scores as returned, every one within [0, 1]: vLLM's /v1/rerank and /score, Cohere, Jina and Infinity return probabilities (a sigmoid of the logit) for most cross-encoders, not raw logits: the p1/p99 normalisation still applies, but the scores are squashed near 0 and 1. The API does not say which it returns (llama.cpp's /v1/rerank returns raw logits); synthq calls them logits as soon as one score falls outside [0, 1], which no probability does",
	"logits-detected": "teacher_raw holds raw logits: the Cohere-style or score API returned scores outside [0, 1], which no probability is (llama.cpp's /v1/rerank returns the cross-encoder's raw logits, where vLLM and Cohere return probabilities)",
	"lexical":         "teacher_raw holds the offline lexical teacher's BM25-style scores (no model)",
}

// TokenUse is LLM usage and its cost at the configured prices: over every
// answer in the store (all that was paid for, across runs) and over the
// requests of the last generate run alone.
type TokenUse struct {
	PromptTokens            int64   `json:"prompt_tokens"`
	CompletionTokens        int64   `json:"completion_tokens"`
	Cost                    float64 `json:"cost"`
	LastRunPromptTokens     int64   `json:"last_run_prompt_tokens"`
	LastRunCompletionTokens int64   `json:"last_run_completion_tokens"`
	LastRunCost             float64 `json:"last_run_cost"`
	LastRunRequests         int64   `json:"last_run_requests"`
	PriceInput              float64 `json:"price_input_per_1m"`
	PriceOutput             float64 `json:"price_output_per_1m"`
	// PaidRun is the last generate run that sent requests when that was an
	// earlier run than the last (a cached re-run sends none); nil when the
	// last run sent them itself, or none ever did.
	PaidRun *PaidRun `json:"paid_run,omitempty"`
}

// PaidRun is what the last generate run that sent requests took.
type PaidRun struct {
	Requests         int64     `json:"requests"`
	PromptTokens     int64     `json:"prompt_tokens"`
	CompletionTokens int64     `json:"completion_tokens"`
	Cost             float64   `json:"cost"`
	Seconds          float64   `json:"seconds"`
	Finished         time.Time `json:"finished"`
}

// StoredUsage sums the tokens of every answer in the store (llm/): what was
// paid for, across runs, interrupted ones included (stage counters only land
// when a stage ends).
func StoredUsage(st *pipeline.Store) (prompt, completion int64, err error) {
	err = dataset.ScanJSON(st, pipeline.PrefixLLM, func(_ string, a dataset.Answer) error {
		prompt += int64(a.PromptTokens)
		completion += int64(a.CompletionTokens)
		return nil
	})
	return prompt, completion, err
}

// Usage reads token use from stage counters (filter sums every stored
// answer; generate counts the last run's requests).
func Usage(stats map[string]pipeline.StageStats, cfg *pipeline.Config) TokenUse {
	f, g := stats["filter"].Counts, stats["generate"].Counts
	u := TokenUse{
		PromptTokens: f["prompt_tokens"], CompletionTokens: f["completion_tokens"],
		LastRunPromptTokens: g["prompt_tokens"], LastRunCompletionTokens: g["completion_tokens"],
		LastRunRequests: g["requests"], PriceInput: cfg.PriceInput, PriceOutput: cfg.PriceOutput,
	}
	u.Cost = cfg.Cost(u.PromptTokens, u.CompletionTokens)
	u.LastRunCost = cfg.Cost(u.LastRunPromptTokens, u.LastRunCompletionTokens)
	if p := stats["generate"].Paid; p != nil && !p.Finished.Equal(stats["generate"].Finished) {
		u.PaidRun = &PaidRun{Requests: p.Counts["requests"], PromptTokens: p.Counts["prompt_tokens"],
			CompletionTokens: p.Counts["completion_tokens"], Seconds: p.Seconds, Finished: p.Finished}
		u.PaidRun.Cost = cfg.Cost(u.PaidRun.PromptTokens, u.PaidRun.CompletionTokens)
	}
	return u
}

// newManifest gathers OUT/manifest.json: the settings, models, template
// versions, targets, counts of every stage and the rows of each split.
func newManifest(env *pipeline.Env, t *dataset.Targets, md map[string]string, stats map[string]pipeline.StageStats, took time.Duration, extra func() map[string]any) (*Manifest, error) {
	if stats == nil {
		var err error
		if stats, err = pipeline.LoadStats(env.Store); err != nil {
			return nil, err
		}
	}
	stats["export"] = pipeline.StageStats{Counts: env.Counters("export").Snapshot(), Seconds: took.Seconds(), Finished: time.Now().UTC()}
	tm, err := prompts.LoadTemplates()
	if err != nil {
		return nil, err
	}
	failed, _, err := dataset.Failures(env.Store, env.Config.FailureScope())
	if err != nil {
		return nil, err
	}
	fails := len(failed)
	plan, err := newGenPlan(env.Config)
	if err != nil {
		return nil, err
	}
	var sel Selection
	if _, err := env.Store.GetJSON(dataset.MetaSelection, &sel); err != nil {
		return nil, err
	}
	dix, err := dataset.DenseIndexes(env.Store)
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		Holdout: sel.Holdout, DuplicatePassages: len(sel.Duplicates), DenseIndex: dix,
		SynthqVersion: Version, Generator: env.Config.Generator(), Teacher: env.Config.Teacher(),
		Config: env.Config, Fingerprint: env.Config.Fingerprint(), Templates: tm.Versions(),
		FewShotPool: plan.pool.Fingerprint(), Targets: t, Stages: stats, SchemaMetadata: md,
		Rows: map[string]int64{
			"train": stats["export"].Counts["rows_train"],
			"dev":   stats["export"].Counts["rows_dev"],
		},
		ExportSeconds: took.Seconds(), Failures: fails, Tokens: Usage(stats, env.Config),
	}
	if extra != nil {
		m.Run = extra()
		if k, ok := m.Run["teacher_score_kind"].(string); ok {
			m.TeacherScoreKind = k
			m.TeacherScoreNote = scoreNotes[k]
			if k != "lexical" && k != "logits" && t != nil && t.Scores > 0 && (t.Min < 0 || t.Max > 1) {
				m.TeacherScoreKind, m.TeacherScoreNote = "logits", scoreNotes["logits-detected"]
			} else if k == "logits" && env.Config.TeacherAPI != "tei" {
				m.TeacherScoreNote = scoreNotes["logits-detected"]
			}
		}
	}
	return m, nil
}
