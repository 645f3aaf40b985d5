package stages

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
)

// PreparedVersion is the layout of a prepared corpus folder; a folder of
// another version is refused.
// (Version 2 records each model's dense index: a folder of version 1 is
// prepared again, its stored vectors reused. Version 3: bm25.idx holds the
// passages' norms, format 2; the index is built again.)
const PreparedVersion = 3

// PreparedMeta describes a prepared corpus (synthq prepare): the corpus it
// was read from and every setting that shaped what it holds. It is stored
// under meta/prepared in the folder's store and as PREP/prepared.json.
type PreparedMeta struct {
	Version  int              `json:"version"`
	Corpus   string           `json:"corpus"` // the path given to prepare (for people; the digest decides)
	SHA256   string           `json:"corpus_sha256"`
	Passages int              `json:"passages"`
	Skipped  map[string]int64 `json:"skipped,omitempty"`

	IDField        string  `json:"id_field"`
	TextField      string  `json:"text_field"`
	TitleField     string  `json:"title_field"`
	SkipInvalid    bool    `json:"skip_invalid"`
	Dedup          string  `json:"dedup"`
	DedupThreshold float64 `json:"dedup_threshold"`
	MaxPassages    int     `json:"max_passages"`
	Holdout        int     `json:"holdout"`
	Seed           uint64  `json:"seed"`
	// Duplicates, Holdout and Sample count the selection's outcome.
	Selection map[string]int `json:"selection"`
	// Dense lists the passage vectors held, one entry per embedding model.
	Dense []PreparedDense `json:"dense,omitempty"`
	// BM25 is the BM25 index file, when --retriever has bm25.
	BM25 *PreparedBM25 `json:"bm25,omitempty"`
}

// PreparedBM25 is the BM25 index of a prepared corpus: a file in the folder
// (BM25IndexFile) that runs map read-only instead of building their own.
type PreparedBM25 struct {
	File     string  `json:"file"`
	K1       float64 `json:"k1"`
	B        float64 `json:"b"`
	Passages int     `json:"passages"`
	Terms    int     `json:"terms"`
	Postings int     `json:"postings"`
}

// PreparedDense is one model's passage vectors in a prepared corpus.
type PreparedDense struct {
	Model         string `json:"model"`
	PassagePrefix string `json:"passage_prefix"`
	Window        string `json:"window"` // dataset.EmbedWindow(...).Desc(): the cut the vectors were embedded with
	Vectors       int    `json:"vectors"`
	Failed        int    `json:"failed,omitempty"` // passages the embedder refused (left out of the dense index)
	// The dense index built over the vectors (STORE/index/IndexFile in the
	// folder): its search mode, lists and fingerprint. Shards map this file
	// read-only and never build their own; a run whose index settings
	// differ is refused.
	IndexMode  string `json:"index_mode"`  // exact | approx
	IndexLists int    `json:"index_lists"` // k-means lists (1: exact)
	IndexFile  string `json:"index_file"`
	IndexFP    string `json:"index_fingerprint"`
}

// PreparedMetaFor is the description a prepare with cfg writes, before the
// corpus digest and counts are known.
func PreparedMetaFor(cfg *pipeline.Config) PreparedMeta {
	return PreparedMeta{Version: PreparedVersion, Corpus: cfg.Corpus,
		IDField: cfg.IDField, TextField: cfg.TextField, TitleField: cfg.TitleField, SkipInvalid: cfg.SkipInvalid,
		Dedup: cfg.Dedup, DedupThreshold: cfg.DedupThreshold, MaxPassages: cfg.MaxPassages, Holdout: cfg.Holdout, Seed: cfg.Seed}
}

// LoadPrepared reads the description of the prepared store st (named dir in
// errors).
func LoadPrepared(st *pipeline.Store, dir string) (PreparedMeta, error) {
	var m PreparedMeta
	ok, err := st.GetJSON(pipeline.PrefixMeta+"prepared", &m)
	if err != nil {
		return m, err
	}
	if !ok {
		return m, fmt.Errorf("--prepared %s: not a finished prepared corpus (no meta/prepared; run synthq prepare --out %s again to finish it)", dir, dir)
	}
	if m.Version != PreparedVersion {
		return m, fmt.Errorf("--prepared %s: layout version %d, this synthq reads %d; prepare it again with this synthq", dir, m.Version, PreparedVersion)
	}
	return m, nil
}

// CheckPrepared refuses a prepared corpus made from another corpus or with
// other settings than cfg's, naming every difference. When cfg names a
// corpus file, its sha256 is compared with the one prepared (one read of the
// file, no parsing); with no --corpus the prepared one is used. Every dense
// run of cfg must have its passage vectors prepared (same model, passage
// prefix and window): a shard never embeds the corpus.
func CheckPrepared(m PreparedMeta, cfg *pipeline.Config, dir string) error {
	var diffs []string
	diff := func(flag, prepared, run string) {
		if prepared != run {
			diffs = append(diffs, fmt.Sprintf("%s: prepared with %q, this run has %q", flag, prepared, run))
		}
	}
	if cfg.Corpus != "" {
		sum, err := fileSHA256(cfg.Corpus)
		if err != nil {
			return fmt.Errorf("--prepared: check the corpus: %w", err)
		}
		if sum != m.SHA256 {
			diffs = append(diffs, fmt.Sprintf("--corpus: %s (sha256 %.12s…) is not the corpus prepared (%s, sha256 %.12s…)", cfg.Corpus, sum, m.Corpus, m.SHA256))
		}
	}
	diff("--id-field", m.IDField, cfg.IDField)
	diff("--text-field", m.TextField, cfg.TextField)
	diff("--title-field", m.TitleField, cfg.TitleField)
	diff("--skip-invalid", strconv.FormatBool(m.SkipInvalid), strconv.FormatBool(cfg.SkipInvalid))
	diff("--dedup", m.Dedup, cfg.Dedup)
	if cfg.Dedup == "near" {
		diff("--dedup-threshold", strconv.FormatFloat(m.DedupThreshold, 'g', -1, 64), strconv.FormatFloat(cfg.DedupThreshold, 'g', -1, 64))
	}
	diff("--max-passages", strconv.Itoa(m.MaxPassages), strconv.Itoa(cfg.MaxPassages))
	diff("--holdout", strconv.Itoa(m.Holdout), strconv.Itoa(cfg.Holdout))
	diff("--seed", strconv.FormatUint(m.Seed, 10), strconv.FormatUint(cfg.Seed, 10))
	runs, err := cfg.DenseRuns()
	if err != nil {
		return err
	}
	win := dataset.EmbedWindow(cfg, nil).Desc()
	meta := dataset.CorpusMeta{SHA256: m.SHA256, Passages: m.Passages}
	for _, d := range runs {
		found := false
		for _, p := range m.Dense {
			if p.Model == d.Model && p.PassagePrefix == d.PassagePrefix && p.Window == win {
				found = true
				diffs = append(diffs, indexDiffs(p, cfg, d, meta)...)
			}
		}
		if !found {
			var have []string
			for _, p := range m.Dense {
				have = append(have, fmt.Sprintf("%s (prefix %q, %s)", p.Model, p.PassagePrefix, orNone(p.Window)))
			}
			diffs = append(diffs, fmt.Sprintf("--embed-model %s (passage prefix %q, %s): no passage vectors prepared for it (prepared: %s); run synthq prepare with the run's --retriever, --embed-model, --passage-prefix and --embed-max-tokens",
				d.Model, d.PassagePrefix, orNone(win), orNone(strings.Join(have, ", "))))
		}
	}
	if slices.Contains(cfg.Retrievers, "bm25") {
		if m.BM25 == nil {
			diffs = append(diffs, "--retriever bm25: no BM25 index prepared; run synthq prepare with the run's --retriever")
		} else {
			diff("--bm25-k1", strconv.FormatFloat(m.BM25.K1, 'g', -1, 64), strconv.FormatFloat(cfg.BM25K1, 'g', -1, 64))
			diff("--bm25-b", strconv.FormatFloat(m.BM25.B, 'g', -1, 64), strconv.FormatFloat(cfg.BM25B, 'g', -1, 64))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("--prepared %s was made from another corpus or with other settings than this run:\n  %s", dir, strings.Join(diffs, "\n  "))
	}
	return nil
}

// indexDiffs names how the dense index prepared for p differs from the one
// run d of cfg searches (none when the fingerprints agree). --dense-probe is
// a search setting, free to differ between shards and the folder.
func indexDiffs(p PreparedDense, cfg *pipeline.Config, d pipeline.DenseRun, meta dataset.CorpusMeta) []string {
	if p.IndexFP == dataset.DenseIndexFP(cfg, d, meta) {
		return nil
	}
	mode, params, _ := dataset.DenseIndexParams(cfg, meta.Passages)
	var out []string
	if p.IndexMode != mode {
		out = append(out, fmt.Sprintf("--dense-index: the %s index was prepared %s %s, this run searches %s over %d passages; run synthq prepare with the run's --dense-index",
			d.Model, orNone(p.IndexMode), indexDesc(p.IndexMode, p.IndexLists), mode, meta.Passages))
	} else if p.IndexLists != params.Lists {
		out = append(out, fmt.Sprintf("--dense-lists: the %s index was prepared with %d lists, this run has %d; run synthq prepare with the run's --dense-lists",
			d.Model, p.IndexLists, params.Lists))
	}
	if len(out) == 0 { // the seed is named among the corpus settings
		out = append(out, fmt.Sprintf("dense index of %s: prepared with fingerprint %.12s…, this run's is %.12s…", d.Model, p.IndexFP, dataset.DenseIndexFP(cfg, d, meta)))
	}
	return out
}

func indexDesc(mode string, lists int) string {
	if mode == "approx" || lists > 1 {
		return fmt.Sprintf("(IVF, %d lists)", lists)
	}
	return "(one list)"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// fileSHA256 is the sha256 of a file's bytes, as ReadCorpus computes it.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// PrepareStage does a corpus's shared work once, after CorpusStage: the
// selection (dedup, holdout, sample) and, for every dense run, the passage
// vectors (embedded in batches and stored as they arrive, so an interrupted
// prepare resumes), then records what it holds under meta/prepared. Cost:
// one selection pass and one embedding of every passage per model; the
// store grows by 4·dim bytes per passage and model.
func PrepareStage(deps *Deps) pipeline.Stage {
	return pipeline.Stage{Name: "prepare", Doc: "select passages and embed the corpus once, for every shard",
		Reads: []string{pipeline.PrefixDoc}, Writes: []string{pipeline.PrefixVec},
		Run: func(ctx context.Context, env *pipeline.Env) error { return runPrepare(ctx, env, deps) }}
}

func runPrepare(ctx context.Context, env *pipeline.Env, deps *Deps) error {
	cfg, st := env.Config, env.Store
	c := env.Counters("prepare")
	m := PreparedMetaFor(cfg)
	var cm dataset.CorpusMeta
	if _, err := st.GetJSON(dataset.MetaCorpus, &cm); err != nil {
		return err
	}
	m.SHA256, m.Passages = cm.SHA256, cm.Passages
	m.Skipped = map[string]int64{}
	for k, v := range env.Counters("corpus").Snapshot() {
		if name, ok := strings.CutPrefix(k, "skipped_"); ok {
			m.Skipped[name] = v
		}
	}
	sel, err := LoadSelection(ctx, st, cfg, env.Progress)
	if err != nil {
		return err
	}
	m.Selection = map[string]int{"duplicates": len(sel.Duplicates), "holdout": len(sel.Holdout)}
	runs, err := cfg.DenseRuns()
	if err != nil {
		return err
	}
	if len(runs) > 0 && (deps == nil || len(deps.Embedders) != len(runs)) {
		return fmt.Errorf("prepare: %d dense runs configured but %d embedders given", len(runs), embeddersOf(deps))
	}
	win := dataset.EmbedWindow(cfg, nil).Desc()
	for i, d := range runs {
		counters := env.Counters("prepare-" + d.Model)
		vc := &vectorCache{st: st, emb: deps.Embedders[i], model: d.Model, concurrency: deps.workers(cfg, "embed"),
			batch: cfg.EmbedBatch, retryFailed: cfg.RetryFailed, counters: counters, progress: env.Progress,
			scope: cfg.FailureScope(), window: win}
		mode, params, _ := dataset.DenseIndexParams(cfg, cm.Passages)
		fp := dataset.DenseIndexFP(cfg, d, cm)
		index, err := vc.passageIndex(ctx, d.PassagePrefix, fp, params)
		if err != nil {
			return fmt.Errorf("prepare: embed the corpus with %s: %w", d.Model, err)
		}
		defer index.Close()
		snap := counters.Snapshot()
		c.Add("passage_vectors_embedded", snap["passage_vectors_embedded"])
		c.Add("passage_vectors_cached", snap["passage_vectors_cached"])
		m.Dense = append(m.Dense, PreparedDense{Model: d.Model, PassagePrefix: d.PassagePrefix, Window: win,
			Vectors: index.Len(), Failed: int(snap["passage_embedding_failed"]),
			IndexMode: mode, IndexLists: params.Lists, IndexFile: filepath.Base(index.Path()), IndexFP: fp})
	}
	if slices.Contains(cfg.Retrievers, "bm25") {
		if m.BM25, err = prepareBM25(ctx, env, cfg.Out, cm); err != nil {
			return err
		}
	}
	return st.PutJSON(pipeline.PrefixMeta+"prepared", m)
}

// PreparedCorpusStage is CorpusStage for a run on a prepared corpus
// (env.Prepared): it copies the passages, the selection and the embedder's
// refusals of passages from the prepared store into the run's own store
// (so export, merge, inspect and report read the run's store alone) instead
// of reading and checking the corpus file. A store that already holds this
// corpus copies nothing; one made from another corpus is refused. Cost: one
// scan of the prepared passages (no JSON decoding); the passage vectors are
// not copied (dense mining reads them from the prepared store).
func PreparedCorpusStage(m PreparedMeta) pipeline.Stage {
	return pipeline.Stage{Name: "corpus", Doc: "copy the prepared corpus into the store", Writes: []string{pipeline.PrefixDoc},
		Run: func(ctx context.Context, env *pipeline.Env) error { return runPreparedCorpus(ctx, env, m) }}
}

func runPreparedCorpus(ctx context.Context, env *pipeline.Env, m PreparedMeta) error {
	st, prep := env.Store, env.Prepared
	if prep == nil {
		return fmt.Errorf("corpus: no prepared store")
	}
	c := env.Counters("corpus")
	var have dataset.CorpusMeta
	hadMeta, err := st.GetJSON(dataset.MetaCorpus, &have)
	if err != nil {
		return err
	}
	if hadMeta && have.SHA256 != m.SHA256 {
		return fmt.Errorf("store %s was made from another corpus (sha256 %.12s…) than the prepared one (%s, sha256 %.12s…); use a new --store",
			st.Path(), have.SHA256, m.Corpus, m.SHA256)
	}
	n, _ := st.Count(pipeline.PrefixDoc)
	if !hadMeta || n != m.Passages {
		bar := env.Progress.Start("corpus", int64(m.Passages))
		b := st.NewBatch()
		defer b.Cancel()
		copied := 0
		if err := prep.Scan(pipeline.PrefixDoc, func(id string, v []byte) error {
			if copied%4096 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			copied++
			bar.Add(1)
			return b.Put(dataset.DocKey(id), bytes.Clone(v))
		}); err != nil {
			bar.Finish()
			return fmt.Errorf("corpus: copy the prepared passages: %w", err)
		}
		bar.Finish()
		if err := b.Flush(); err != nil {
			return err
		}
	}
	// The embedder's refusals of passages: not asked again by the shards.
	if err := prep.Scan(pipeline.PrefixFail, func(k string, v []byte) error {
		if ok, err := st.Has(pipeline.PrefixFail + k); err != nil || ok {
			return err
		}
		return st.Put(pipeline.PrefixFail+k, bytes.Clone(v))
	}); err != nil {
		return err
	}
	sel, ok, err := prep.Get(dataset.MetaSelection)
	if err != nil {
		return err
	}
	if ok {
		if err := st.Put(dataset.MetaSelection, sel); err != nil {
			return err
		}
	}
	c.Add("passages", int64(m.Passages))
	for k, v := range m.Skipped {
		c.Add("skipped_"+k, v)
	}
	// The passage texts: the prepared folder's file (read-only, shared by
	// every shard), else one of the run's own, written from its store.
	now := dataset.CorpusMeta{SHA256: m.SHA256, Passages: m.Passages}
	if !hasPassageFile(prep.Path(), now) && !hasPassageFile(st.Path(), now) {
		if err := writePassageFile(ctx, st, now); err != nil {
			return err
		}
	}
	return st.PutJSON(dataset.MetaCorpus, now)
}
