package stages

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sourcegraph/conc/pool"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/prompts"
	"github.com/synthq/synthq/retriever"
)

// mineChunk is how many queries are retrieved together: one dense
// SearchBatch call and one round of embedding requests.
const mineChunk = 2048

// MineStage retrieves cfg.Candidates passages for every kept query with each
// configured first-pass run (BM25, and one dense run per embedding model),
// storing each run's hit list under the fingerprint of (run settings, corpus,
// k, query), and fuses the runs by reciprocal rank fusion. An index is built
// only when some query's hits are not stored; passage and query vectors are
// stored too, so nothing is embedded twice. It applies the round-trip filter
// (source passage in the fused top cfg.RoundtripK; 0 disables), removes
// candidates that duplicate the source passage (equal normalised text, or a
// near duplicate found by --dedup near), and drops queries left with fewer
// than cfg.MinCandidates candidates.
func MineStage(deps *Deps) pipeline.Stage {
	ms := &mineState{}
	var embs []any
	if deps != nil {
		embs = embeddersAsAny(deps.Embedders)
	}
	cut := cutAgainSince(embs...)
	return pipeline.Stage{Name: "mine", Doc: "retrieve candidate passages",
		Reads:  []string{pipeline.PrefixDoc, pipeline.PrefixQuery},
		Writes: []string{pipeline.PrefixMined, pipeline.PrefixHits, pipeline.PrefixVec},
		Run: func(ctx context.Context, env *pipeline.Env) error {
			defer cut(env.Counters("mine"), "texts_cut_again")
			return runMine(ctx, env, deps, ms)
		},
		Ahead: pipeline.AheadOf(func(ctx context.Context, env *pipeline.Env, in <-chan answered) error {
			return mineAhead(ctx, env, deps, ms, in)
		})}
}

// firstPass is one retrieval run: a name for counts, the fingerprint of its
// settings, and a batch search.
type firstPass struct {
	name   string
	fp     string
	search func(ctx context.Context, qs []string) ([][]retriever.Hit, error)
	// close, when set, releases what search opened (a mapped index file);
	// called when mine's Run is over.
	close func()
}

// mineState is what mining needs of the whole corpus: the first-pass runs
// (indexes built lazily), the passages' normalised hashes and the
// selection. Run and Ahead share one, so the indexes are built once.
type mineState struct {
	once   sync.Once
	err    error
	runs   []firstPass
	normOf map[string]uint64
	sel    *Selection
}

func (ms *mineState) init(ctx context.Context, env *pipeline.Env, deps *Deps) error {
	ms.once.Do(func() { ms.err = ms.build(ctx, env, deps) })
	return ms.err
}

// release drops the indexes and maps once mine's Run is over (its Ahead has
// drained before Run starts), so label and export do not carry them: the
// BM25 index of a 1M-passage corpus is ~420 MB of heap. The memory goes
// back to the system at once, not when the scavenger gets to it, as label
// and export then map the store's pages. A later Run builds them again.
func (ms *mineState) release() {
	for _, r := range ms.runs {
		if r.close != nil {
			r.close() // unmaps the dense index file: its pages leave the RSS
		}
	}
	held := ms.runs != nil || ms.normOf != nil
	ms.once, ms.err, ms.runs, ms.normOf, ms.sel = sync.Once{}, nil, nil, nil, nil
	if held {
		returnGarbage()
	}
}

func (ms *mineState) build(ctx context.Context, env *pipeline.Env, deps *Deps) error {
	st := env.Store
	var meta dataset.CorpusMeta
	if _, err := st.GetJSON(dataset.MetaCorpus, &meta); err != nil {
		return err
	}
	sel, err := LoadSelection(ctx, st, env.Config, env.Progress)
	if err != nil {
		return err
	}
	// A candidate duplicates the source when their normalised texts are
	// equal or the selection made one a duplicate of the other's root.
	// One pass over the corpus, shown as the "passages" bar.
	normOf := make(map[string]uint64, meta.Passages)
	bar := env.Progress.Start("passages", int64(meta.Passages))
	err = dataset.ScanJSON(st, pipeline.PrefixDoc, func(id string, p dataset.Passage) error {
		normOf[id] = pipeline.Hash64(prompts.Normalize(p.Full()))
		bar.Add(1)
		return nil
	})
	bar.Finish()
	if err != nil {
		return err
	}
	runs, err := firstPasses(ctx, env, deps, meta)
	if err != nil {
		return err
	}
	ms.runs, ms.normOf, ms.sel = runs, normOf, sel
	return nil
}

// mineAhead retrieves candidates for queries as the LLM's answers arrive:
// it parses each announced answer (the filter's pure function), searches
// every first-pass run in small batches, stores the hit lists where Run
// looks for them, and announces the lists that pass the round trip to the
// teacher working ahead. Indexes are built (BM25) and passages embedded
// (dense) as soon as it starts, while the LLM writes.
func mineAhead(ctx context.Context, env *pipeline.Env, deps *Deps, ms *mineState, in <-chan answered) error {
	cfg, st := env.Config, env.Store
	c := env.Counters("mine")
	if err := ms.init(ctx, env, deps); err != nil {
		return err
	}
	var warm sync.WaitGroup
	for _, run := range ms.runs {
		warm.Add(1)
		go func() {
			defer warm.Done()
			run.search(ctx, nil) // builds the index; an error sticks and is returned by the first search
		}()
	}
	defer warm.Wait()
	opts := prompts.ParseOptions{MaxWords: cfg.MaxQueryWords, MaxCopiedWords: cfg.MaxCopiedWords}
	var chunk []dataset.Query
	var qids []string
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		lists := make([][]dataset.HitList, len(chunk))
		for i := range lists {
			lists[i] = make([]dataset.HitList, len(ms.runs))
		}
		for r, run := range ms.runs {
			if err := hitsFor(ctx, st, run, chunk, lists, r, c); err != nil {
				return err
			}
		}
		for i, q := range chunk {
			if m, _ := mineOne(cfg, q, lists[i], ms.normOf, ms.sel); m.Drop == "" {
				env.Announce("mine", minedItem{QID: qids[i], M: m})
			}
		}
		c.Add("ahead_queries", int64(len(chunk)))
		chunk, qids = chunk[:0], qids[:0]
		return nil
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case a, ok := <-in:
			if !ok {
				if ctx.Err() != nil || env.AheadStopped() {
					return nil // the queries of chunk are mined by Run, if the run goes on
				}
				return flush()
			}
			if ctx.Err() != nil || env.AheadStopped() {
				continue // drain: nothing new is started
			}
			text, drop := prompts.Parse(a.Type, a.Content, a.Passage, opts)
			if drop != "" {
				continue
			}
			chunk = append(chunk, dataset.Query{DocID: a.DocID, Type: a.Type, Sample: a.Sample, Text: text})
			qids = append(qids, dataset.QID(a.DocID, a.Type, a.Sample))
			if len(chunk) >= aheadChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		case <-tick.C:
			if ctx.Err() != nil || env.AheadStopped() {
				continue
			}
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// aheadChunk is how many queries mine searches together while working
// ahead: small, so the teacher gets lists soon, large enough for the dense
// runs' batched embedding and search.
const aheadChunk = 256

func runMine(ctx context.Context, env *pipeline.Env, deps *Deps, ms *mineState) error {
	cfg, st := env.Config, env.Store
	c := env.Counters("mine")
	defer ms.release()
	if err := ms.init(ctx, env, deps); err != nil {
		return err
	}
	runs, normOf, sel := ms.runs, ms.normOf, ms.sel

	total, _ := st.Count(pipeline.PrefixQuery)
	bar := env.Progress.Start("mine", int64(total))
	defer bar.Finish()
	table := st.Table(pipeline.PrefixMined)
	defer table.Cancel()
	var chunk []dataset.Query
	var qids []string
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		lists := make([][]dataset.HitList, len(chunk)) // query -> run -> hits
		for i := range lists {
			lists[i] = make([]dataset.HitList, len(runs))
		}
		for r, run := range runs {
			if err := hitsFor(ctx, st, run, chunk, lists, r, c); err != nil {
				return err
			}
		}
		for i, q := range chunk {
			m, removed := mineOne(cfg, q, lists[i], normOf, sel)
			c.Add(dataset.RemovedDuplicateDoc, int64(removed))
			if m.Drop != "" {
				c.Add("drop_"+m.Drop, 1)
			} else {
				c.Add("kept", 1)
			}
			if err := table.PutJSON(qids[i], m); err != nil {
				return err
			}
		}
		bar.Add(int64(len(chunk)))
		chunk, qids = chunk[:0], qids[:0]
		return nil
	}
	if err := dataset.ScanJSON(st, pipeline.PrefixQuery, func(qid string, q dataset.Query) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if q.Drop != "" {
			bar.Add(1)
			return nil
		}
		chunk, qids = append(chunk, q), append(qids, qid)
		if len(chunk) == mineChunk {
			return flush()
		}
		return nil
	}); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	return table.Finish(ctx)
}

// hitsFor fills lists[i][r] for every query of the chunk from the store, or
// by searching run r for the queries whose hits are not stored (then
// stored). A query the embedder refused gets no hits from that run.
func hitsFor(ctx context.Context, st *pipeline.Store, run firstPass, chunk []dataset.Query, lists [][]dataset.HitList, r int, c *pipeline.Counters) error {
	var missing []int
	for i, q := range chunk {
		ok, err := st.GetJSON(dataset.HitsKey(run.fp, q.Text), &lists[i][r])
		if err != nil {
			return err
		}
		if ok && lists[i][r].Check() != nil {
			// Stored by an earlier or broken synthq: searched again and
			// stored over, never reused.
			lists[i][r], ok = dataset.HitList{}, false
			c.Add(run.name+"_invalid", 1)
		}
		if !ok {
			missing = append(missing, i)
		}
	}
	c.Add(run.name+"_cached", int64(len(chunk)-len(missing)))
	if len(missing) == 0 {
		return nil
	}
	texts := make([]string, len(missing))
	for j, i := range missing {
		texts[j] = chunk[i].Text
	}
	hits, err := run.search(ctx, texts)
	if err != nil {
		return fmt.Errorf("%s search: %w", run.name, err)
	}
	c.Add(run.name+"_searched", int64(len(missing)))
	b := st.NewBatch()
	defer b.Cancel()
	for j, i := range missing {
		if hits[j] == nil {
			continue // refused by the embedder: not stored, asked again next run
		}
		// Non-nil even when empty: nil marks a refused query.
		hl := dataset.HitList{IDs: make([]string, len(hits[j])), Scores: make([]float32, len(hits[j]))}
		for k, h := range hits[j] {
			hl.IDs[k], hl.Scores[k] = h.DocID, h.Score
		}
		lists[i][r] = hl
		if err := b.PutJSON(dataset.HitsKey(run.fp, chunk[i].Text), hl); err != nil {
			return err
		}
	}
	return b.Flush()
}

// firstPasses builds the configured runs. Indexes are built lazily, on the
// first query whose hits are not stored.
func firstPasses(ctx context.Context, env *pipeline.Env, deps *Deps, meta dataset.CorpusMeta) ([]firstPass, error) {
	cfg, st := env.Config, env.Store
	dense, err := cfg.DenseRuns()
	if err != nil {
		return nil, err
	}
	var runs []firstPass
	if slices.Contains(cfg.Retrievers, "bm25") {
		var (
			once  sync.Once
			index *retriever.BM25
			ixErr error
		)
		fp := dataset.BM25RunFP(cfg, meta.SHA256)
		runs = append(runs, firstPass{name: "bm25", fp: fp, search: func(ctx context.Context, qs []string) ([][]retriever.Hit, error) {
			once.Do(func() {
				if cfg.Prepared != "" && env.Prepared != nil {
					index, ixErr = openPreparedBM25(cfg, meta)
					if ixErr == nil {
						env.Counters("mine").Add("bm25_index_loaded", 1)
					}
					return
				}
				index, ixErr = buildBM25(ctx, st, cfg, env.Progress)
				if ixErr == nil {
					env.Counters("mine").Add("bm25_index_built", 1)
				}
			})
			if ixErr != nil {
				return nil, ixErr
			}
			out := make([][]retriever.Hit, len(qs))
			p := pool.New().WithErrors().WithContext(ctx).WithMaxGoroutines(runtime.GOMAXPROCS(0))
			per := (len(qs) + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
			for lo := 0; lo < len(qs); lo += per {
				hi := min(lo+per, len(qs))
				p.Go(func(ctx context.Context) error {
					for i := lo; i < hi; i++ {
						h, err := index.Search(ctx, qs[i], cfg.Candidates)
						if err != nil {
							return err
						}
						out[i] = h
					}
					return nil
				})
			}
			return out, p.Wait()
		}, close: func() {
			if index != nil {
				index.Close() // a prepared index file: unmapped, its pages leave the RSS
				index = nil
			}
		}})
	}
	if len(dense) > 0 && (deps == nil || len(deps.Embedders) != len(dense)) {
		return nil, fmt.Errorf("mine: %d dense runs configured but %d embedders given", len(dense), embeddersOf(deps))
	}
	for i, d := range dense {
		win := dataset.EmbedWindow(cfg, nil).Desc()
		vc := &vectorCache{st: st, prep: env.Prepared, emb: deps.Embedders[i], model: d.Model, concurrency: deps.workers(cfg, "embed"),
			batch: cfg.EmbedBatch, retryFailed: cfg.RetryFailed, counters: env.Counters("mine"), progress: env.Progress,
			scope: cfg.FailureScope(), window: win}
		var (
			once  sync.Once
			index *retriever.IVF
			ixErr error
		)
		name := "dense"
		if len(dense) > 1 {
			name = "dense" + strconv.Itoa(i)
		}
		fp := dataset.DenseRunFP(cfg, d, meta)
		mode, params, probe := dataset.DenseIndexParams(cfg, meta.Passages)
		rc := &recallCheck{st: st, key: dataset.DenseIndexKey(name), seed: cfg.Seed, progress: env.Progress,
			rec: dataset.DenseIndexInfo{Run: name, Model: d.Model, Mode: mode, Lists: params.Lists, Probe: probe, K: cfg.Candidates, RunFP: fp}}
		runs = append(runs, firstPass{name: name, fp: fp, search: func(ctx context.Context, qs []string) ([][]retriever.Hit, error) {
			once.Do(func() {
				index, ixErr = vc.passageIndex(ctx, d.PassagePrefix, dataset.DenseIndexFP(cfg, d, meta), params)
				if ixErr == nil {
					ixErr = rc.start(index)
				}
			})
			if ixErr != nil {
				return nil, ixErr
			}
			texts := make([]string, len(qs))
			for j, q := range qs {
				texts[j] = d.QueryPrefix + q
			}
			vecs, failed, err := vc.vectors(ctx, texts, "query")
			if err != nil {
				return nil, err
			}
			var ok [][]float32
			var at []int
			for j, v := range vecs {
				if v != nil {
					ok, at = append(ok, v), append(at, j)
				}
			}
			vc.counters.Add("query_embedding_failed", int64(len(failed)))
			res, err := index.SearchBatch(ctx, ok, cfg.Candidates, probe, 0)
			if err != nil {
				return nil, err
			}
			if mode == "approx" {
				if err := rc.check(ctx, index, qs, at, ok, res); err != nil {
					return nil, err
				}
			}
			out := make([][]retriever.Hit, len(qs))
			for k, j := range at {
				out[j] = res[k]
				if out[j] == nil {
					out[j] = []retriever.Hit{}
				}
			}
			return out, nil
		}, close: func() {
			if index != nil {
				index.Close()
				index = nil
			}
		}})
	}
	return runs, nil
}

func embeddersOf(d *Deps) int {
	if d == nil {
		return 0
	}
	return len(d.Embedders)
}

// mineOne fuses a query's run lists and applies the filters. It returns the
// list and how many candidates it removed as duplicates of the source.
func mineOne(cfg *pipeline.Config, q dataset.Query, lists []dataset.HitList, normOf map[string]uint64, sel *Selection) (dataset.Mined, int) {
	ranked := make([][]string, len(lists))
	for r, l := range lists {
		ranked[r] = l.IDs
	}
	ids := retriever.FirstPass(cfg.RRFK, cfg.Candidates, ranked...)
	m := dataset.Mined{DocID: q.DocID, Type: q.Type, Query: q.Text}
	refused := 0
	for _, l := range lists {
		if l.IDs == nil {
			refused++
		}
	}
	if refused == len(lists) {
		// Every run refused the query (the embedder could not take it).
		m.Drop = dataset.DropEmbedFailed
		return m, 0
	}
	srcNorm, srcRoot := normOf[q.DocID], sel.Root(q.DocID)
	srcRank, removed := 0, 0
	for i, id := range ids {
		if id == q.DocID {
			srcRank = i + 1
		} else if normOf[id] == srcNorm || sel.Root(id) == srcRoot {
			removed++
			continue // a copy of the source passage is not a negative
		}
		m.DocIDs = append(m.DocIDs, id)
		m.Ranks = append(m.Ranks, int32(i+1))
	}
	switch {
	case cfg.RoundtripK > 0 && (srcRank == 0 || srcRank > cfg.RoundtripK):
		m.Drop = dataset.DropRoundtrip
	case srcRank == 0:
		// Round trip disabled and the source was not retrieved: it still
		// belongs in its own list, at first-pass rank 0 ("not retrieved").
		m.DocIDs = append(m.DocIDs, q.DocID)
		m.Ranks = append(m.Ranks, 0)
	}
	if m.Drop == "" && len(m.DocIDs) < cfg.MinCandidates {
		m.Drop = dataset.DropFewCandidates
	}
	if m.Drop != "" {
		m.DocIDs, m.Ranks = nil, nil
	}
	return m, removed
}
