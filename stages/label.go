package stages

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"

	"github.com/sourcegraph/conc/pool"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/pipeline"
)

// FatalError marks a teacher failure that no retry of another item can fix
// (a bad API key, an unknown model): the run stops.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// LabelStage scores every candidate of every kept query with the teacher.
// Scores are cached per (teacher, query text), passage by passage, and each
// teacher call's scores are stored as soon as they arrive: a resumed run sends
// only the pairs not yet scored, and identical queries never re-score. A
// query whose scoring fails is recorded as failed and the run goes on.
func LabelStage(deps *Deps) pipeline.Stage {
	var scorer any
	if deps != nil {
		scorer = deps.Scorer
	}
	cut := cutAgainSince(scorer)
	return pipeline.Stage{Name: "label", Doc: "score candidates with the teacher", PaidCounter: "pairs_scored",
		Reads:  []string{pipeline.PrefixDoc, pipeline.PrefixMined},
		Writes: []string{pipeline.PrefixLabel, pipeline.PrefixScore},
		Run: func(ctx context.Context, env *pipeline.Env) error {
			defer cut(env.Counters("label"), "candidates_cut_again")
			return runLabel(ctx, env, deps)
		},
		Ahead: pipeline.AheadOf(func(ctx context.Context, env *pipeline.Env, in <-chan minedItem) error {
			return labelAhead(ctx, env, deps, in)
		})}
}

// cutAgainer is implemented by clients that cut an input again after the
// server refused it as too long, stating its count (embed.Client and the
// HTTP teachers): CutAgain is how many inputs then passed, since the client
// was made.
type cutAgainer interface{ CutAgain() int64 }

// cutAgainSince notes the inputs the clients have cut again so far; the
// function it returns adds those cut again since to counter name of c (a
// stage calls it at the end of its Run, after its Ahead work).
func cutAgainSince(clients ...any) func(c *pipeline.Counters, name string) {
	var cs []cutAgainer
	var base int64
	for _, x := range clients {
		if r, ok := x.(cutAgainer); ok {
			cs = append(cs, r)
			base += r.CutAgain()
		}
	}
	return func(c *pipeline.Counters, name string) {
		var n int64
		for _, r := range cs {
			n += r.CutAgain()
		}
		if n > base {
			c.Add(name, n-base)
		}
	}
}

func embeddersAsAny(es []Embedder) []any {
	out := make([]any, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// errEarlierFailure marks a query skipped because an earlier run of the same
// settings recorded it failed (its record, and first reason, are kept).
var errEarlierFailure = errors.New("failed on an earlier run (use --retry-failed to try again)")

func runLabel(ctx context.Context, env *pipeline.Env, deps *Deps) error {
	cfg, st := env.Config, env.Store
	table := st.Table(pipeline.PrefixLabel)
	defer table.Cancel()
	total, _ := st.Count(pipeline.PrefixMined)
	bar := env.Progress.Start("label", int64(total))
	defer bar.Finish()
	lb := newLabeller(env, deps, bar)
	defer lb.close()
	lb.table = table
	p := pool.New().WithContext(ctx).WithMaxGoroutines(deps.workers(cfg, "teacher")).WithCancelOnError().WithFirstError()
	scanErr := dataset.ScanJSON(st, pipeline.PrefixMined, func(qid string, m dataset.Mined) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if env.Stopping() {
			return pipeline.ErrInterrupted
		}
		if m.Drop != "" {
			bar.Add(1)
			return nil
		}
		p.Go(func(ctx context.Context) error { return lb.label(ctx, qid, m, true) })
		return nil
	})
	werr := p.Wait()
	if err := firstErr(scanErr, werr); err != nil {
		return err
	}
	if err := lb.ref.Close(); err != nil {
		return err
	}
	return table.Finish(ctx)
}

// minedItem is a kept candidate list announced by mine while it works
// ahead.
type minedItem struct {
	QID string
	M   dataset.Mined
}

// labelAhead scores the lists mine announces while the LLM still writes:
// the scores (and failure records) land in the cache that runLabel then
// reads, so the teacher fleet works beside the LLM fleet.
func labelAhead(ctx context.Context, env *pipeline.Env, deps *Deps, in <-chan minedItem) error {
	lb := newLabeller(env, deps, nil)
	defer lb.close()
	p := pool.New().WithContext(ctx).WithMaxGoroutines(deps.workers(env.Config, "teacher")).WithCancelOnError().WithFirstError()
	// Before the filter's cross-corpus dedup, one query text can come from
	// several passages; its scores are cached by text, so one is scored at a
	// time and the others find them stored.
	var busy sync.Map
	for mi := range in {
		if ctx.Err() != nil || env.AheadStopped() {
			continue // drain: nothing new is started
		}
		if _, dup := busy.LoadOrStore(mi.M.Query, true); dup {
			continue
		}
		p.Go(func(ctx context.Context) error {
			defer busy.Delete(mi.M.Query)
			return lb.label(ctx, mi.QID, mi.M, false)
		})
	}
	if err := firstErr(p.Wait()); err != nil {
		return err
	}
	return nil
}

// labeller scores one list at a time; runLabel and labelAhead share it.
type labeller struct {
	env   *pipeline.Env
	deps  *Deps
	cfg   *pipeline.Config
	st    *pipeline.Store
	c     *pipeline.Counters
	tfp   string
	scope string
	texts *passageCache[string]
	src   *passageSource
	ref   *pipeline.Refusals
	bar   *pipeline.Bar   // nil while working ahead
	table *pipeline.Table // the labelled lists (l/), rewritten in place; nil while working ahead
	probe func(ctx context.Context) error
}

func newLabeller(env *pipeline.Env, deps *Deps, bar *pipeline.Bar) *labeller {
	cfg := env.Config
	src := openPassages(env.Store, env.Prepared, env.Progress.Warnf)
	lb := &labeller{env: env, deps: deps, cfg: cfg, st: env.Store, c: env.Counters("label"), tfp: dataset.TeacherFingerprint(cfg),
		scope: cfg.FailureScope(), texts: teacherTexts(src, cfg.TeacherInput), src: src, ref: env.Refusals("teacher"), bar: bar}
	var once sync.Once
	var probeErr error
	lb.probe = func(ctx context.Context) error {
		once.Do(func() {
			if deps.ProbeTeacher != nil {
				probeErr = deps.ProbeTeacher(ctx)
			}
		})
		return probeErr
	}
	return lb
}

// close releases the passage texts file.
func (lb *labeller) close() { lb.src.close() }

func (lb *labeller) done() {
	if lb.bar != nil {
		lb.bar.Add(1)
	}
}

// label scores m's candidates not yet scored. A query failed for its own
// inputs is recorded (through the role's Refusals); a Config or Endpoint
// fault is returned (the run stops). With derive (runLabel), the labelled
// list l/<qid> is written and the outcome counted; without (working ahead),
// only the cache is filled.
func (lb *labeller) label(ctx context.Context, qid string, m dataset.Mined, derive bool) error {
	st, c, cfg := lb.st, lb.c, lb.cfg
	key := dataset.ScoreKey(lb.tfp, m.Query)
	l, sent, err := scoreOne(ctx, st, lb.texts, lb.deps.Scorer, cfg, key, m, lb.probe, lb.scope)
	c.Add("pairs_scored", int64(sent))
	if !derive {
		c.Add("ahead_queries", 1)
	}
	var fe *FatalError
	switch {
	case errors.As(err, &fe):
		return fe.Err
	case ctx.Err() != nil:
		return ctx.Err() // in flight at Ctrl-C: not done, not failed
	case errors.Is(err, httpx.ErrStopped):
		return nil // not sent: the run is stopping; the others in flight go on
	case errors.Is(err, errEarlierFailure):
		if derive {
			c.Add("failed", 1)
			lb.done()
		}
		return nil
	case err != nil && !isItemFault(err):
		return err // the server's trouble or a setting, not this query's
	case err != nil:
		return lb.ref.Failed(err.Error(), teacherRefusalHint, func() error {
			if derive {
				c.Add("failed", 1)
				lb.done()
			}
			return dataset.RecordFailure(st, dataset.FailKey(key), dataset.Failure{Stage: "label", Item: qid, Reason: err.Error(), Settings: lb.scope})
		})
	}
	if sent > 0 {
		if err := lb.ref.Succeeded(); err != nil {
			return err
		}
	}
	if !derive {
		return nil
	}
	c.Add("labelled", 1)
	if sent == 0 {
		c.Add("cached", 1)
	}
	if n := len(m.DocIDs) - len(l.DocIDs); n > 0 {
		c.Add("candidates_refused", int64(n))
	}
	if err := lb.table.PutJSON(qid, l); err != nil {
		return err
	}
	if cfg.RetryFailed {
		if err := st.Delete(dataset.FailKey(key)); err != nil {
			return err
		}
	}
	if sent == 0 && lb.bar != nil {
		lb.bar.AddFound(1) // labelled ahead or by an earlier run: not this run's rate
		return nil
	}
	lb.done()
	return nil
}

const teacherRefusalHint = "the server refuses the rerank requests themselves: check --teacher-api and --teacher-model against this server, and --teacher-batch"

// isItemFault reports whether a scoring error is about the query's own
// inputs: the teacher's answer about them, a decode failure of that answer,
// or a request that kept failing while the server answered others. An
// endpoint's trouble (an outage past --max-outage) is not.
func isItemFault(err error) bool {
	switch httpx.KindOf(err) {
	case httpx.Endpoint, httpx.Config:
		return false
	}
	return true
}

// scoreOne returns m's labelled list: its candidates in candidate order
// with their raw scores, less the candidates the teacher refused on their own
// (over its window even after the cut; stored as NaN, so never asked again
// under these settings). It scores only the pairs not yet stored,
// cfg.TeacherBatch passages a call. A teacher fault of kind Config is a
// *FatalError (the run stops, nothing is recorded); Endpoint faults are
// returned as they are; anything else fails the query. A refused source
// passage fails the query.
func scoreOne(ctx context.Context, st *pipeline.Store, tc *passageCache[string], sc Scorer, cfg *pipeline.Config, key string, m dataset.Mined,
	probe func(context.Context) error, scope string) (dataset.Labelled, int, error) {
	var none dataset.Labelled
	stored, err := loadScores(st, key)
	if err != nil {
		return none, 0, err
	}
	var missing []string
	for _, id := range m.DocIDs {
		if _, ok := stored[id]; !ok {
			missing = append(missing, id)
		}
	}
	sent := 0
	if len(missing) > 0 {
		if !cfg.RetryFailed {
			if failed, err := dataset.EarlierFailure(st, dataset.FailKey(key), scope); err != nil {
				return none, 0, err
			} else if failed {
				return none, 0, errEarlierFailure
			}
		}
		if err := probe(ctx); err != nil {
			return none, 0, &FatalError{err}
		}
	}
	ps, partial := sc.(PartialScorer)
	refusedWhy := map[string]string{}
	for i := 0; i < len(missing); i += cfg.TeacherBatch {
		ids := missing[i:min(i+cfg.TeacherBatch, len(missing))]
		texts := make([]string, len(ids))
		if err := tc.getAll(ids, texts); err != nil {
			return none, sent, err
		}
		var scores []float32
		var refused map[int]string
		var err error
		if partial {
			scores, refused, err = ps.ScorePartial(ctx, m.Query, texts)
		} else {
			scores, err = sc.Score(ctx, m.Query, texts)
		}
		if err != nil {
			if httpx.KindOf(err) == httpx.Config || isFatalTeacher(err) {
				return none, sent, &FatalError{err}
			}
			return none, sent, err
		}
		if len(scores) != len(ids) {
			return none, sent, fmt.Errorf("teacher returned %d scores for %d passages", len(scores), len(ids))
		}
		call := make(map[string]float32, len(ids))
		for j, id := range ids {
			if why, ok := refused[j]; ok {
				stored[id] = float32(math.NaN()) // refused: left out of the list
				call[id] = stored[id]
				refusedWhy[id] = why
				continue
			}
			if math.IsNaN(float64(scores[j])) || math.IsInf(float64(scores[j]), 0) {
				return none, sent, fmt.Errorf("teacher returned %v for passage %q", scores[j], id)
			}
			stored[id], call[id] = scores[j], scores[j]
		}
		sent += len(ids)
		if err := st.Put(scoreCallKey(key, ids), encodeScores(call)); err != nil {
			return none, sent, err
		}
	}
	l := dataset.Labelled{DocID: m.DocID, Type: m.Type, Query: m.Query}
	for i, id := range m.DocIDs {
		s := stored[id]
		if math.IsNaN(float64(s)) {
			if id == m.DocID {
				why := refusedWhy[id]
				if why == "" {
					why = "refused on an earlier run"
				}
				return none, sent, fmt.Errorf("teacher refused the source passage %q: %s", id, why)
			}
			continue
		}
		l.DocIDs = append(l.DocIDs, id)
		l.Ranks = append(l.Ranks, m.Ranks[i])
		l.Raw = append(l.Raw, s)
	}
	return l, sent, nil
}

// teacherTexts caches what the teacher reads of recently used passages
// (candidates recur across queries: popular passages are read once, not
// once per query): the text, or title and text (--teacher-input), up to
// teacherTextsBudget bytes, or teacherTextsFileBudget when they are read
// from the passage texts file.
func teacherTexts(src *passageSource, input string) *passageCache[string] {
	budget := teacherTextsBudget
	if src.file != nil {
		budget = teacherTextsFileBudget
	}
	return newPassageCache(src, budget, func(p dataset.Passage) string {
		if input == "title+text" {
			return p.Full()
		}
		return p.Text
	}, func(s string) int { return len(s) })
}

// teacherTextsBudget bounds the passage texts label keeps when it reads
// them from the store: ~170k passages of 700 bytes, a sixth of a
// 1M-passage corpus, where the candidates of queries over the same topics
// recur (BENCHMARKS.md "Millions of passages").
const teacherTextsBudget = 128 << 20

// teacherTextsFileBudget bounds them when they are read from the passage
// texts file, where a miss costs one pread from the page cache (~1 µs), not
// a Badger lookup: the cache is then mostly heap (and twice that in RSS
// with the collector's headroom) for little gain.
const teacherTextsFileBudget = 16 << 20

// isFatalTeacher reports a failure that no other item would fix from a
// Scorer that does not return *httpx.Fault: one with an HTTP status of 401,
// 403, 404 or 501.
func isFatalTeacher(err error) bool {
	var s interface{ Status() int }
	if errors.As(err, &s) {
		switch s.Status() {
		case 401, 403, 404, 501:
			return true
		}
	}
	return false
}

// encodeScores stores (passage id, float32) pairs compactly, sorted by id.
func encodeScores(m map[string]float32) []byte {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b []byte
	for _, id := range ids {
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(m[id]))
	}
	return b
}

// decodeScores adds the pairs of an encodeScores record to m. A record cut
// short or otherwise malformed is an error, never a panic.
func decodeScores(b []byte, m map[string]float32) error {
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) || uint64(len(b)-k)-n < 4 {
			return errors.New("corrupt score record")
		}
		id := string(b[k : k+int(n)])
		b = b[k+int(n):]
		m[id] = math.Float32frombits(binary.LittleEndian.Uint32(b))
		b = b[4:]
	}
	return nil
}

// The scores of one query text live under key = score/<fingerprint>, one
// record per teacher call at key/<fingerprint of the call's passage ids>
// (older stores hold one record at key itself, still read). Each call
// appends its own record, so scoring a list of n candidates writes n scores,
// not the whole list again after every call; every finished call survives a
// killed process.
func scoreCallKey(key string, ids []string) string {
	return key + "/" + pipeline.Fingerprint(ids...)
}

// loadScores merges every score record of a query text (see scoreCallKey).
// A record that does not decode, or holds a score that is not finite (one
// stored by an earlier synthq from a hostile answer), is deleted, so its
// passages are scored again: a poisoned cache heals on the next run.
func loadScores(st *pipeline.Store, key string) (map[string]float32, error) {
	m := map[string]float32{}
	var bad []string
	err := st.Scan(key, func(sub string, v []byte) error {
		if sub != "" && sub[0] != '/' {
			return nil // not one of this key's records
		}
		rec := map[string]float32{}
		if err := decodeScores(v, rec); err != nil {
			bad = append(bad, key+sub)
			return nil
		}
		for _, x := range rec {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				bad = append(bad, key+sub)
				return nil
			}
		}
		for id, x := range rec {
			m[id] = x
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range bad {
		if err := st.Delete(k); err != nil {
			return nil, err
		}
	}
	return m, nil
}
