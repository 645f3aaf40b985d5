package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/prompts"
)

// Version is synthq's version, written into the schema metadata and manifest.
const Version = "0.1.0"

// exportBatchRows is the number of rows per Arrow record batch.
const exportBatchRows = 1024

// ListwiseSchema is the schema of the listwise layout. md is attached as
// schema metadata.
func ListwiseSchema(md map[string]string) *arrow.Schema {
	keys := pipeline.SortedKeys(md) // map order is random; the bytes must not be
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = md[k]
	}
	m := arrow.NewMetadata(keys, vals)
	return arrow.NewSchema([]arrow.Field{
		{Name: "qid", Type: arrow.BinaryTypes.String},
		{Name: "query", Type: arrow.BinaryTypes.String},
		{Name: "query_type", Type: arrow.BinaryTypes.String},
		{Name: "source_docid", Type: arrow.BinaryTypes.String},
		{Name: "split", Type: arrow.BinaryTypes.String},
		{Name: "docids", Type: arrow.ListOf(arrow.BinaryTypes.String)},
		{Name: "texts", Type: arrow.ListOf(arrow.BinaryTypes.String)},
		{Name: "teacher_scores", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32)},
		{Name: "teacher_raw", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32)},
		{Name: "retriever_ranks", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
	}, &m)
}

// ExportStage applies the targets (filters, normalisation, split) and writes
// OUT/{train,dev}.arrow (Arrow IPC stream), OUT/{train,dev}.parquet (zstd)
// and OUT/manifest.json. Rows are sorted by qid and streamed in record
// batches of 1024: memory does not grow with the number of rows. Files are
// written beside their final name and renamed when complete, so a killed
// export never leaves a truncated file under the final name. The same store
// always exports the same bytes.
func ExportStage(extra func() map[string]any) pipeline.Stage {
	return pipeline.Stage{Name: "export", Doc: "write Arrow, Parquet and the manifest", Run: func(ctx context.Context, env *pipeline.Env) error {
		return runExport(ctx, env, extra)
	}}
}

type splitWriter struct {
	name           string
	arrowF, parqF  *os.File
	ipcW           *ipc.Writer
	pqW            *pqarrow.FileWriter
	b              *array.RecordBuilder
	rows, buffered int
}

func newSplitWriter(dir, name string, schema *arrow.Schema, mem memory.Allocator) (*splitWriter, error) {
	w := &splitWriter{name: name}
	var err error
	if w.arrowF, err = os.Create(filepath.Join(dir, "."+name+".arrow.tmp")); err != nil {
		return nil, fmt.Errorf("create %s.arrow: %w", name, err)
	}
	if w.parqF, err = os.Create(filepath.Join(dir, "."+name+".parquet.tmp")); err != nil {
		return nil, fmt.Errorf("create %s.parquet: %w", name, err)
	}
	w.ipcW = ipc.NewWriter(w.arrowF, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	// Dictionary encoding is off except for the two tiny columns: arrow/go v17
	// writes a column chunk's page-encoding stats in Go map order, so a chunk
	// whose dictionary overflows (RLE_DICTIONARY pages, then PLAIN ones) would
	// not give the same bytes twice. One encoding per chunk keeps them stable.
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithAllocator(mem),
		parquet.WithDictionaryDefault(false), parquet.WithDictionaryFor("query_type", true), parquet.WithDictionaryFor("split", true))
	if w.pqW, err = pqarrow.NewFileWriter(schema, struct{ io.Writer }{w.parqF}, props, // not an io.Closer: we sync and close the file ourselves
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(mem))); err != nil {
		return nil, fmt.Errorf("parquet writer %s: %w", name, err)
	}
	w.b = array.NewRecordBuilder(mem, schema)
	return w, nil
}

func (w *splitWriter) flush() error {
	if w.buffered == 0 {
		return nil
	}
	rec := w.b.NewRecord()
	defer rec.Release()
	if err := w.ipcW.Write(rec); err != nil {
		return fmt.Errorf("write %s.arrow: %w", w.name, err)
	}
	if err := w.pqW.Write(rec); err != nil {
		return fmt.Errorf("write %s.parquet: %w", w.name, err)
	}
	w.buffered = 0
	return nil
}

func (w *splitWriter) close(dir string) error {
	if err := w.flush(); err != nil {
		return err
	}
	w.b.Release()
	if err := w.ipcW.Close(); err != nil {
		return fmt.Errorf("close %s.arrow: %w", w.name, err)
	}
	if err := w.pqW.Close(); err != nil {
		return fmt.Errorf("close %s.parquet: %w", w.name, err)
	}
	for _, f := range []*os.File{w.arrowF, w.parqF} {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", f.Name(), err)
		}
		f.Close()
	}
	for _, ext := range []string{"arrow", "parquet"} {
		if err := os.Rename(filepath.Join(dir, "."+w.name+"."+ext+".tmp"), filepath.Join(dir, w.name+"."+ext)); err != nil {
			return fmt.Errorf("rename %s.%s: %w", w.name, ext, err)
		}
	}
	return nil
}

func (w *splitWriter) abort(dir string) {
	w.ipcW.Close()
	w.pqW.Close()
	w.arrowF.Close()
	w.parqF.Close()
	os.Remove(filepath.Join(dir, "."+w.name+".arrow.tmp"))
	os.Remove(filepath.Join(dir, "."+w.name+".parquet.tmp"))
}

func runExport(ctx context.Context, env *pipeline.Env, extra func() map[string]any) error {
	cfg, st := env.Config, env.Store
	c := env.Counters("export")
	start := time.Now()
	t, err := ComputeTargets(ctx, st, cfg)
	if err != nil {
		return err
	}
	for k, v := range t.counts {
		c.Add(k, v)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return fmt.Errorf("create output dir: %w", err)
	}
	md := map[string]string{
		"synthq_version":     Version,
		"layout":             "listwise",
		"generator":          cfg.Generator(),
		"teacher":            cfg.Teacher(),
		"config_fingerprint": cfg.Fingerprint(),
		"norm":               cfg.Norm,
	}
	schema := ListwiseSchema(md)
	mem := memory.NewGoAllocator()
	writers := map[string]*splitWriter{}
	for _, name := range []string{"train", "dev"} {
		w, err := newSplitWriter(cfg.Out, name, schema, mem)
		if err != nil {
			return err
		}
		writers[name] = w
	}
	done := false
	defer func() {
		if !done {
			for _, w := range writers {
				w.abort(cfg.Out)
			}
		}
	}()
	bar := env.Progress.Start("export", int64(t.Kept))
	defer bar.Finish()
	err = st.Scan(pipeline.PrefixLabel, func(qid string, v []byte) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var l Labelled
		if err := json.Unmarshal(v, &l); err != nil {
			return fmt.Errorf("labelled %s: %w", qid, err)
		}
		idx, drop := t.row(&l, cfg)
		if drop != "" {
			return nil
		}
		split := t.Split(l.DocID)
		w := writers[split]
		if err := appendRow(st, w.b, qid, split, &l, idx, t, cfg); err != nil {
			return err
		}
		w.rows++
		w.buffered++
		bar.Add(1)
		if w.buffered >= exportBatchRows {
			return w.flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range []string{"train", "dev"} {
		if err := writers[name].close(cfg.Out); err != nil {
			return err
		}
		c.Add("rows_"+name, int64(writers[name].rows))
	}
	done = true
	return writeManifest(env, t, md, time.Since(start), extra)
}

func appendRow(st *pipeline.Store, b *array.RecordBuilder, qid, split string, l *Labelled, idx []int, t *Targets, cfg *pipeline.Config) error {
	b.Field(0).(*array.StringBuilder).Append(qid)
	b.Field(1).(*array.StringBuilder).Append(l.Query)
	b.Field(2).(*array.StringBuilder).Append(l.Type)
	b.Field(3).(*array.StringBuilder).Append(l.DocID)
	b.Field(4).(*array.StringBuilder).Append(split)
	lists := make([]*array.ListBuilder, 5)
	for i := range lists {
		lists[i] = b.Field(5 + i).(*array.ListBuilder)
		lists[i].Append(true)
	}
	ids := lists[0].ValueBuilder().(*array.StringBuilder)
	texts := lists[1].ValueBuilder().(*array.StringBuilder)
	norm := lists[2].ValueBuilder().(*array.Float32Builder)
	raw := lists[3].ValueBuilder().(*array.Float32Builder)
	ranks := lists[4].ValueBuilder().(*array.Int32Builder)
	for _, i := range idx {
		id := l.DocIDs[i]
		var p Passage
		if ok, err := st.GetJSON(pipeline.PrefixDoc+id, &p); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("query %s: passage %q not in the store", qid, id)
		}
		ids.Append(id)
		texts.Append(p.Full())
		norm.Append(t.normalise(l.Raw[i], cfg))
		raw.Append(l.Raw[i])
		ranks.Append(l.Ranks[i])
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
	Targets          *Targets                       `json:"targets"`
	Stages           map[string]pipeline.StageStats `json:"stages"`
	Rows             map[string]int64               `json:"rows"`
	Failures         int                            `json:"failures"`
	Tokens           TokenUse                       `json:"tokens"`
	Run              map[string]any                 `json:"run,omitempty"`
	SchemaMetadata   map[string]string              `json:"schema_metadata"`
	ExportSeconds    float64                        `json:"export_seconds"`
}

// scoreNotes say what teacher_raw holds for each kind of teacher API.
var scoreNotes = map[string]string{
	"logits":    "teacher_raw holds the cross-encoder's raw logits (TEI with raw_scores: true)",
	"relevance": "teacher_raw holds the API's relevance scores as returned; the Cohere-style /v1/rerank and vLLM's /score return probabilities (a sigmoid of the logit) for most cross-encoders, not raw logits: the p1/p99 normalisation still applies, but the scores are squashed near 0 and 1",
	"lexical":   "teacher_raw holds the offline lexical teacher's BM25-style scores (no model)",
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
	return u
}

func writeManifest(env *pipeline.Env, t *Targets, md map[string]string, took time.Duration, extra func() map[string]any) error {
	stats, err := pipeline.LoadStats(env.Store)
	if err != nil {
		return err
	}
	stats["export"] = pipeline.StageStats{Counts: env.Counters("export").Snapshot(), Seconds: took.Seconds(), Finished: time.Now().UTC()}
	tm, err := prompts.LoadTemplates()
	if err != nil {
		return err
	}
	fails, err := env.Store.Count(pipeline.PrefixFail)
	if err != nil {
		return err
	}
	plan, err := newGenPlan(env.Config)
	if err != nil {
		return err
	}
	m := Manifest{
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
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	tmp := filepath.Join(env.Config.Out, ".manifest.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return os.Rename(tmp, filepath.Join(env.Config.Out, "manifest.json"))
}
