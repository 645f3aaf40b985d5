// Package report renders what a run produced as one self-contained HTML
// page: the funnel from passages to exported lists with every drop reason,
// query lengths and copying, teacher score distributions with the
// percentile cuts, first-pass ranks of the source passage, cost and speed,
// seeded examples and the run's settings.
//
// Build aggregates the store in streaming scans (fixed-size histograms and
// counters, bounded seeded samples), so its memory does not grow with the
// number of queries; Render writes the page, which loads nothing from
// anywhere (inline CSS and SVG, no script). The same store and options give
// the same bytes.
package report

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/synthq/synthq/adapter"
	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/internal/redact"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/prompts"
	"github.com/synthq/synthq/retriever"
	"github.com/synthq/synthq/stages"
)

// Options tune a report. A nil *Options means the defaults.
type Options struct {
	// StorePath is the store as the reader should name it in the
	// `synthq inspect --store …` commands the page shows.
	StorePath string
	// Manifest is the path of the run's manifest.json, read for the facts
	// only the manifest holds (retries, who served what); "" or a missing
	// file leaves them out.
	Manifest string
	// Examples is how many examples are shown per query type and per drop
	// reason (default 3).
	Examples int
	// Sample bounds the queries whose first-pass lists and passages are read
	// for the rank and copying figures (default 20,000; a seeded sample when
	// there are more).
	Sample int
}

// EnsureDefaults fills zero fields.
func (o *Options) EnsureDefaults() {
	if o.Examples == 0 {
		o.Examples = 3
	}
	if o.Sample == 0 {
		o.Sample = 20000
	}
}

// Hist is a histogram over [Lo, Hi) in len(Counts) equal bins; values
// outside fall in the end bins (Lo and Hi are the true extremes where known).
type Hist struct {
	Lo, Hi float64
	Counts []int64
}

func newHist(lo, hi float64, bins int) Hist {
	if !(hi > lo) {
		hi = lo + 1
	}
	return Hist{Lo: lo, Hi: hi, Counts: make([]int64, bins)}
}

func (h *Hist) add(v float64) {
	i := int(math.Floor((v - h.Lo) / (h.Hi - h.Lo) * float64(len(h.Counts))))
	h.Counts[max(0, min(i, len(h.Counts)-1))]++
}

// Total is the number of values counted.
func (h Hist) Total() int64 {
	var n int64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Step is one step of the funnel, with the drops that lead to the next.
type Step struct {
	Name    string
	Total   int64
	PerType []int64 // aligned with Data.Types
	Drops   []Drop  // removed between this step and the next
}

// Drop is one drop reason between two funnel steps.
type Drop struct {
	Stage, Reason string
	Total         int64
	PerType       []int64
}

// Example is one exported list or one dropped query.
type Example struct {
	QID, Type, Query, Split string
	Stage, Reason           string // for a dropped query
	Answer                  string // the raw LLM answer, for a query dropped by the parser
	Source                  Passage
	List                    []Cand // exported list (or, dropped at the teacher, its top candidates)
	Inspect                 string // the synthq inspect command
}

// Passage is a passage as the report shows it.
type Passage struct {
	DocID, Title, Text string
}

// Cand is one candidate of an example list.
type Cand struct {
	DocID      string
	Text       string
	Raw, Score float32
	Rank       int32 // first-pass rank; 0: added, not retrieved
	Source     bool
}

// RankBin is one bin of first-pass ranks: ranks in [Lo, Hi] (Lo = 0: not
// retrieved).
type RankBin struct {
	Lo, Hi int
	Label  string
}

// FirstPass is where first-pass retrieval put the source passage.
type FirstPass struct {
	// DenseIndex is how each dense run searched, with the recall self-check
	// of an approximate index.
	DenseIndex []dataset.DenseIndexInfo
	Runs       []string  // run names, then "fused" when several ran
	Bins       []RankBin // shared by every run
	Counts     [][]int64 // run -> bin -> queries
	NearMisses []int64   // run -> queries with the source in (k, 2k]
	InTopK     []int64   // run -> queries with the source in the top OverlapK
	RoundtripK int
	Sampled    int // queries whose lists were read
	Queries    int // queries that went into mining
	Missing    int // sampled queries some run holds no list for
	// Overlap[a][b] is the mean share of run a's top K also in run b's top K.
	OverlapK int
	Overlap  [][]float64
	// FoundBy counts, with two runs, the sampled queries whose source is in
	// the top RoundtripK of: both, only the first, only the second, neither.
	FoundBy []int64
}

// Scores are the teacher's score distributions over the labelled lists.
type Scores struct {
	Kind               string // lexical, logits, relevance or "" (unknown)
	Lists              int64
	Raw, Norm          [3]Hist // source, best negative, rest
	Margin             Hist    // raw source − best negative
	P1, P99, Min, Max  float64
	Cut                *float64 // raw top-score threshold; nil when off
	CutPercentile      float64
	NormCut            float64
	SourceTop1         int64   // lists whose source the teacher ranks first
	NoNegatives        int64   // lists with no negative (no margin)
	MeanMarginPositive float64 // mean margin of the lists whose source scores above every negative
}

// StageRow is one stage's time and throughput.
type StageRow struct {
	Stage    string
	Seconds  float64
	Finished string // UTC, as stored
	Items    int64
	Unit     string
	Counts   map[string]int64
	// CutAgain is the inputs a server refused as too long and that were
	// cut again from its stated count (mine: texts embedded, label:
	// candidates scored), named by CutAgainWhat; 0: none.
	CutAgain     int64
	CutAgainWhat string
	// Paid is the stage's last run that sent requests when that was an
	// earlier run than this one (a cached re-run sends none).
	Paid *StageRow
}

// Endpoint is one server's figures as the run stored them (meta/endpoints).
type Endpoint struct {
	Role        string  `json:"role"`
	URL         string  `json:"url"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	Refusals    int64   `json:"refusals"`
	Retries     int64   `json:"retries"`
	Concurrency int64   `json:"concurrency"`
	Rate        float64 `json:"rate"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	// Answers per second in steps of SeriesStepS from Start (the first
	// request), where the run recorded them.
	Start       string    `json:"start,omitempty"`
	Series      []float64 `json:"series,omitempty"`
	SeriesStepS float64   `json:"series_step_s,omitempty"`
}

// KV is one setting or fact.
type KV struct{ Key, Value string }

// FailureGroup counts failures of one stage.
type FailureGroup struct {
	Stage    string
	Count    int
	Examples []dataset.Failure
}

// Data is everything the page shows.
type Data struct {
	Store, Generator, Teacher, Version, ConfigFingerprint string
	Types                                                 []string
	Passages, PassagesAsked                               int64
	Funnel                                                []Step
	Exported, Train, Dev                                  int64
	MaxQueryWords, MaxCopiedWords                         int
	QueryWords                                            []Hist  // per type: words of the unique queries, bins 1…MaxQueryWords
	Answered, CopiedDrops                                 []int64 // per type
	Copied                                                Hist    // longest copied run of the sampled unique queries (words)
	CopiedSampled, CopiedOf                               int
	Scores                                                Scores
	FirstPass                                             FirstPass
	Stages                                                []StageRow
	Tokens                                                stages.TokenUse
	Endpoints                                             []Endpoint
	HasEndpoints                                          bool
	RunFacts                                              []KV
	Failures                                              []FailureGroup
	FailureCount                                          int
	Examples                                              map[string][]Example // type -> exported examples
	Dropped                                               []DropExamples
	Settings, Provenance                                  []KV
	ExamplesPer, Candidates                               int
	Adapter                                               *adapter.Record // the last `synthq adapt` on this store; nil if none
	// InvalidLists counts the stored labelled lists that fail their check
	// (left out of every figure); FirstInvalid names the first and what is
	// wrong with it.
	InvalidLists int64
	FirstInvalid error
}

// DropExamples are the examples of one drop reason.
type DropExamples struct {
	Stage, Reason string
	Count         int64
	Examples      []Example
}

// typeAgg is what the scans count per query type.
type typeAgg struct {
	slots, answered, parsed, unique, mined, labelled, kept, exported, train, dev int64
	drops                                                                        map[string]int64 // stage/reason -> n
	words                                                                        Hist
}

// Build aggregates the store of a run with settings cfg (the stored
// config, with any target flags applied). It reads each table once, the
// labelled one four times (three for the set-wide targets, as the export),
// and a bounded sample of hit lists and passages.
func Build(ctx context.Context, st *pipeline.Store, cfg *pipeline.Config, opts *Options) (*Data, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	o.EnsureDefaults()
	b := &builder{ctx: ctx, st: st, cfg: cfg, o: o, agg: map[string]*typeAgg{},
		seed: strconv.FormatUint(cfg.Seed, 10), examples: map[string]*sampler[Example]{}, dropped: map[string]*sampler[Example]{}}
	d := &Data{Store: o.StorePath, Generator: cfg.Generator(), Teacher: cfg.Teacher(), Version: stages.Version,
		ConfigFingerprint: cfg.Fingerprint(), MaxQueryWords: cfg.MaxQueryWords, MaxCopiedWords: cfg.MaxCopiedWords,
		ExamplesPer: o.Examples, Candidates: cfg.Candidates}
	b.d = d
	stats, err := pipeline.LoadStats(st)
	if err != nil {
		return nil, err
	}
	d.Passages = stats["corpus"].Counts["passages"]
	d.PassagesAsked = stats["filter"].Counts["passages_asked"]
	for _, step := range []func() error{b.scanQueries, b.scanMined, b.scanLabelled, b.firstPass, b.copying, b.failures, b.examplesText} {
		if err := step(); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	b.funnel()
	d.Tokens = stages.Usage(stats, cfg)
	d.Stages = stageRows(stats)
	if err := b.runFacts(); err != nil {
		return nil, err
	}
	if err := b.settings(); err != nil {
		return nil, err
	}
	if d.Adapter, err = loadAdapter(st); err != nil {
		return nil, err
	}
	return d, nil
}

type builder struct {
	ctx      context.Context
	st       *pipeline.Store
	cfg      *pipeline.Config
	o        Options
	d        *Data
	seed     string
	agg      map[string]*typeAgg
	examples map[string]*sampler[Example] // type -> exported lists
	dropped  map[string]*sampler[Example] // stage/reason -> dropped queries
	dropN    map[string]int64
	mineS    sampler[minedQuery]
	copyS    sampler[copyQuery]
	minedN   int
	uniqueN  int
}

type minedQuery struct{ qid, docID, query string }
type copyQuery struct{ docID, query string }

func (b *builder) typ(t string) *typeAgg {
	a := b.agg[t]
	if a == nil {
		a = &typeAgg{drops: map[string]int64{}, words: newHist(0.5, float64(b.cfg.MaxQueryWords)+0.5, max(1, b.cfg.MaxQueryWords))}
		b.agg[t] = a
	}
	return a
}

// hash orders queries for seeded samples: the same seed, the same sample.
func (b *builder) hash(kind, qid string) uint64 {
	return pipeline.Mix64(pipeline.Hash64("report", kind, b.seed, qid))
}

func (b *builder) inspect(qid string) string {
	return "synthq inspect --store " + shellQuote(b.o.StorePath) + " " + shellQuote(qid)
}

func (b *builder) drop(stage, reason, qtype string, h uint64, ex func() Example) {
	key := stage + "/" + reason
	b.typ(qtype).drops[key]++
	s := b.dropped[key]
	if s == nil {
		s = &sampler[Example]{k: b.o.Examples}
		b.dropped[key] = s
	}
	s.offer(h, ex)
}

// Filter drops that mean no answer, and those that mean a duplicate.
var (
	unanswered = []string{dataset.DropLLMFailed, dataset.DropNotGenerated}
	duplicates = []string{dataset.DropDuplicatePassage, dataset.DropDuplicateCorpus, dataset.DropDuplicateAcrossShards}
)

func (b *builder) scanQueries() error {
	return dataset.ScanJSON(b.st, pipeline.PrefixQuery, func(qid string, q dataset.Query) error {
		a := b.typ(q.Type)
		a.slots++
		if !slices.Contains(unanswered, q.Drop) {
			a.answered++
		}
		if q.Drop == "" || slices.Contains(duplicates, q.Drop) {
			a.parsed++
		}
		if q.Drop == "" {
			a.unique++
			a.words.add(float64(len(strings.Fields(q.Text))))
			b.uniqueN++
			b.copyS.k = b.o.Sample
			b.copyS.offer(b.hash("copy", qid), func() copyQuery { return copyQuery{q.DocID, q.Text} })
			return nil
		}
		b.drop("filter", q.Drop, q.Type, b.hash("drop", qid), func() Example {
			ex := Example{QID: qid, Type: q.Type, Query: q.Text, Stage: "filter", Reason: q.Drop, Inspect: b.inspect(qid)}
			ex.Source.DocID = q.DocID
			if !slices.Contains(unanswered, q.Drop) {
				if ans, err := dataset.AnswerFor(b.st, &q); err == nil && ans != nil {
					ex.Answer = ans.Content
				}
			}
			return ex
		})
		return b.ctx.Err()
	})
}

func (b *builder) scanMined() error {
	b.mineS.k = b.o.Sample
	return dataset.ScanJSON(b.st, pipeline.PrefixMined, func(qid string, m dataset.Mined) error {
		b.minedN++
		if m.Drop != dataset.DropEmbedFailed {
			b.mineS.offer(b.hash("mine", qid), func() minedQuery { return minedQuery{qid, m.DocID, m.Query} })
		}
		if m.Drop == "" {
			b.typ(m.Type).mined++
			return nil
		}
		b.drop("mine", m.Drop, m.Type, b.hash("drop", qid), func() Example {
			return Example{QID: qid, Type: m.Type, Query: m.Query, Stage: "mine", Reason: m.Drop,
				Source: Passage{DocID: m.DocID}, Inspect: b.inspect(qid)}
		})
		return b.ctx.Err()
	})
}

const scoreBins = 24

func (b *builder) scanLabelled() error {
	cfg := b.cfg
	t, err := dataset.ComputeTargets(b.ctx, b.st, cfg)
	if err != nil {
		return err
	}
	b.d.InvalidLists, b.d.FirstInvalid = t.DropCounts()["drop_"+dataset.DropInvalidRecord], t.FirstInvalid()
	s := &b.d.Scores
	switch {
	case cfg.Offline:
		s.Kind = "lexical"
	case cfg.TeacherAPI == "tei":
		s.Kind = "logits"
	default:
		s.Kind = "relevance"
	}
	s.P1, s.P99, s.Min, s.Max, s.Cut, s.CutPercentile = t.P1, t.P99, t.Min, t.Max, t.Threshold, cfg.MinTopPercentile
	if s.Cut != nil {
		s.NormCut = float64(t.Normalise(float32(*s.Cut), cfg))
	}
	for i := range s.Raw {
		s.Raw[i] = newHist(t.Min, t.Max, scoreBins)
		s.Norm[i] = newHist(0, 1, scoreBins)
	}
	nlo, nhi := float64(t.Normalise(float32(t.Min), cfg)), float64(t.Normalise(float32(t.Max), cfg))
	if cfg.Norm == "none" {
		for i := range s.Norm {
			s.Norm[i] = newHist(nlo, nhi, scoreBins)
		}
	}
	// Margins are binned finely over ±(max − min), with 0 on a bin edge, and
	// merged for display (fine.display).
	span := t.Max - t.Min
	if !(span > 0) {
		span = 1
	}
	fine := newHist(-span, span, 2*marginFine)
	top1, top1Cfg := &dataset.Targets{MinTop: math.Inf(-1)}, *cfg
	top1Cfg.RequireSourceTop1, top1Cfg.ListSize = true, math.MaxInt32
	var marginSum float64
	var marginPos int64
	err = dataset.ScanJSON(b.st, pipeline.PrefixLabel, func(qid string, l dataset.Labelled) error {
		a := b.typ(l.Type)
		a.labelled++
		s.Lists++
		src, best := -1, -1
		for i, id := range l.DocIDs {
			if id == l.DocID && src < 0 {
				src = i
			} else if best < 0 || l.Raw[i] > l.Raw[best] {
				best = i
			}
		}
		for i, raw := range l.Raw {
			role := 2
			switch i {
			case src:
				role = 0
			case best:
				role = 1
			}
			s.Raw[role].add(float64(raw))
			s.Norm[role].add(float64(t.Normalise(raw, cfg)))
		}
		switch {
		case src < 0:
		case best < 0:
			s.NoNegatives++
		default:
			m := float64(l.Raw[src]) - float64(l.Raw[best])
			fine.add(m)
			if m > 0 {
				marginSum += m
				marginPos++
			}
		}
		// Whether the teacher ranks the source first, ties broken as the
		// export breaks them.
		if _, d := top1.Row(&l, &top1Cfg); d == "" {
			s.SourceTop1++
		}
		idx, drop := t.Row(&l, cfg)
		h := b.hash("list", qid)
		if drop != "" {
			b.drop("teacher", drop, l.Type, b.hash("drop", qid), func() Example {
				ex := Example{QID: qid, Type: l.Type, Query: l.Query, Stage: "teacher", Reason: drop,
					Source: Passage{DocID: l.DocID}, Inspect: b.inspect(qid)}
				ex.List = candidates(&l, byScore(&l, 4), t, cfg)
				return ex
			})
			return b.ctx.Err()
		}
		a.kept++
		if cfg.Layout == "sentence-transformers" && len(idx) < cfg.ListSize {
			b.drop("export", "shorter_than_list_size", l.Type, b.hash("drop", qid), func() Example {
				return Example{QID: qid, Type: l.Type, Query: l.Query, Stage: "export", Reason: "shorter_than_list_size",
					Source: Passage{DocID: l.DocID}, Inspect: b.inspect(qid), List: candidates(&l, idx, t, cfg)}
			})
			return b.ctx.Err()
		}
		a.exported++
		split := t.Split(l.DocID)
		if split == "dev" {
			a.dev++
		} else {
			a.train++
		}
		ex := b.examples[l.Type]
		if ex == nil {
			ex = &sampler[Example]{k: b.o.Examples}
			b.examples[l.Type] = ex
		}
		ex.offer(h, func() Example {
			return Example{QID: qid, Type: l.Type, Query: l.Query, Split: split, Source: Passage{DocID: l.DocID},
				Inspect: b.inspect(qid), List: candidates(&l, idx[:min(len(idx), 5)], t, cfg)}
		})
		return b.ctx.Err()
	})
	s.Margin = fine.display(marginFine, 28)
	if marginPos > 0 {
		s.MeanMarginPositive = marginSum / float64(marginPos)
	}
	return err
}

// marginFine is the number of fine margin bins on each side of 0.
const marginFine = 1200

// display trims empty end bins of a histogram centred on 0 (zero at bin
// index zero) and merges bins so at most maxBins remain, keeping 0 on an edge.
func (h Hist) display(zero, maxBins int) Hist {
	lo, hi := -1, -1
	for i, c := range h.Counts {
		if c > 0 {
			if lo < 0 {
				lo = i
			}
			hi = i
		}
	}
	w := (h.Hi - h.Lo) / float64(len(h.Counts))
	if lo < 0 {
		return newHist(-1, 1, 2)
	}
	width := (hi - lo + 1 + maxBins - 1) / maxBins
	// Align groups on zero: group g covers fine bins [zero+g·width, zero+(g+1)·width).
	g0 := floorDiv(lo-zero, width)
	g1 := floorDiv(hi-zero, width)
	out := Hist{Lo: h.Lo + float64(zero+g0*width)*w, Hi: h.Lo + float64(zero+(g1+1)*width)*w, Counts: make([]int64, g1-g0+1)}
	for i := lo; i <= hi; i++ {
		out.Counts[floorDiv(i-zero, width)-g0] += h.Counts[i]
	}
	return out
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// byScore returns the indices of the n best-scored candidates.
func byScore(l *dataset.Labelled, n int) []int {
	idx := make([]int, len(l.DocIDs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(l.Raw[b], l.Raw[a]) })
	return idx[:min(n, len(idx))]
}

func candidates(l *dataset.Labelled, idx []int, t *dataset.Targets, cfg *pipeline.Config) []Cand {
	out := make([]Cand, len(idx))
	for k, i := range idx {
		out[k] = Cand{DocID: l.DocIDs[i], Raw: l.Raw[i], Score: t.Normalise(l.Raw[i], cfg), Rank: l.Ranks[i], Source: l.DocIDs[i] == l.DocID}
	}
	return out
}

// firstPass reads the stored hit lists of a seeded sample of the mined
// queries and bins the rank of the source passage in each run and in their
// fusion.
func (b *builder) firstPass() error {
	cfg := b.cfg
	fp := &b.d.FirstPass
	fp.Queries = b.minedN
	fp.RoundtripK = cfg.RoundtripK
	runs, err := dataset.FirstPassRuns(b.st, cfg)
	if err != nil {
		return err
	}
	if fp.DenseIndex, err = dataset.DenseIndexes(b.st); err != nil {
		return err
	}
	for _, r := range runs {
		fp.Runs = append(fp.Runs, r.Name)
	}
	if len(runs) > 1 {
		fp.Runs = append(fp.Runs, "fused")
	}
	k := cfg.RoundtripK
	if k <= 0 {
		k = 20
	}
	fp.Bins = rankBins(k, cfg.Candidates)
	fp.Counts = make([][]int64, len(fp.Runs))
	for i := range fp.Counts {
		fp.Counts[i] = make([]int64, len(fp.Bins))
	}
	fp.NearMisses = make([]int64, len(fp.Runs))
	fp.InTopK = make([]int64, len(fp.Runs))
	fp.OverlapK = k
	fp.Overlap = make([][]float64, len(runs))
	for i := range fp.Overlap {
		fp.Overlap[i] = make([]float64, len(runs))
	}
	if len(runs) == 2 {
		fp.FoundBy = make([]int64, 4)
	}
	overlapN := 0
	for _, q := range b.mineS.sorted() {
		lists := make([][]string, len(runs))
		missing := false
		for r, run := range runs {
			ids, ok, err := dataset.StoredHits(b.st, run, q.query)
			if err != nil {
				return err
			}
			if !ok {
				missing = true
				break
			}
			lists[r] = ids
		}
		if missing {
			fp.Missing++
			continue
		}
		fp.Sampled++
		ranked := lists
		if len(runs) > 1 {
			ranked = append(append([][]string{}, lists...), retriever.FirstPass(cfg.RRFK, cfg.Candidates, lists...))
		}
		for r, ids := range ranked {
			rank := slices.Index(ids, q.docID) + 1
			fp.Counts[r][binOf(fp.Bins, rank)]++
			if rank > 0 && rank <= k {
				fp.InTopK[r]++
			}
			if rank > k && rank <= 2*k {
				fp.NearMisses[r]++
			}
		}
		if len(runs) > 1 {
			overlapN++
			for a := range runs {
				top := lists[a][:min(k, len(lists[a]))]
				for c := range runs {
					other := lists[c][:min(k, len(lists[c]))]
					n := 0
					for _, id := range top {
						if slices.Contains(other, id) {
							n++
						}
					}
					if len(top) > 0 {
						fp.Overlap[a][c] += float64(n) / float64(len(top))
					}
				}
			}
		}
		if len(runs) == 2 {
			in := func(ids []string) bool { i := slices.Index(ids, q.docID); return i >= 0 && i < k }
			a, c := in(lists[0]), in(lists[1])
			switch {
			case a && c:
				fp.FoundBy[0]++
			case a:
				fp.FoundBy[1]++
			case c:
				fp.FoundBy[2]++
			default:
				fp.FoundBy[3]++
			}
		}
		if err := b.ctx.Err(); err != nil {
			return err
		}
	}
	if overlapN > 0 {
		for a := range fp.Overlap {
			for c := range fp.Overlap[a] {
				fp.Overlap[a][c] /= float64(overlapN)
			}
		}
	}
	return nil
}

// rankBins are the bins of source ranks: 1, 2, 3, 4–5, 6–10, …, with k and
// 2k as bin edges (the round-trip cut and the near misses beyond it), then
// "not retrieved".
func rankBins(k, candidates int) []RankBin {
	edges := []int{1, 2, 3, 5, 10, 50, 100, candidates, k, 2 * k}
	slices.Sort(edges)
	edges = slices.Compact(edges)
	var bins []RankBin
	lo := 1
	for _, e := range edges {
		if e > candidates || e < lo {
			continue
		}
		label := strconv.Itoa(lo)
		if e > lo {
			label += "–" + strconv.Itoa(e)
		}
		bins = append(bins, RankBin{Lo: lo, Hi: e, Label: label})
		lo = e + 1
	}
	return append(bins, RankBin{Lo: 0, Hi: 0, Label: "not retrieved"})
}

func binOf(bins []RankBin, rank int) int {
	for i, b := range bins {
		if rank >= b.Lo && rank <= b.Hi && b.Lo > 0 {
			return i
		}
	}
	return len(bins) - 1
}

// copying measures the longest run of words each sampled unique query
// shares with its passage.
func (b *builder) copying() error {
	d := b.d
	n := max(d.MaxCopiedWords, 1)
	d.Copied = newHist(-0.5, float64(n)+0.5, n+1)
	d.CopiedOf = b.uniqueN
	for _, q := range b.copyS.sorted() {
		var p dataset.Passage
		ok, err := b.st.GetJSON(dataset.DocKey(q.docID), &p)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		d.Copied.add(float64(prompts.CopiedWords(q.query, p.Text)))
		d.CopiedSampled++
	}
	return nil
}

func (b *builder) failures() error {
	groups := map[string]*FailureGroup{}
	err := dataset.ScanJSON(b.st, pipeline.PrefixFail, func(_ string, f dataset.Failure) error {
		g := groups[f.Stage]
		if g == nil {
			g = &FailureGroup{Stage: f.Stage}
			groups[f.Stage] = g
		}
		g.Count++
		b.d.FailureCount++
		if len(g.Examples) < 5 {
			f.Reason = redact.Text(clip(f.Reason, 400))
			f.Item = redact.Text(f.Item)
			g.Examples = append(g.Examples, f)
		}
		return nil
	})
	for _, k := range pipeline.SortedKeys(groups) {
		b.d.Failures = append(b.d.Failures, *groups[k])
	}
	return err
}

// examplesText fills in the passages and texts of the sampled examples.
func (b *builder) examplesText() error {
	d := b.d
	d.Examples = map[string][]Example{}
	text := func(id string) (Passage, error) {
		var p dataset.Passage
		_, err := b.st.GetJSON(dataset.DocKey(id), &p)
		return Passage{DocID: id, Title: p.Title, Text: p.Text}, err
	}
	fill := func(ex *Example) error {
		src, err := text(ex.Source.DocID)
		if err != nil {
			return err
		}
		ex.Source = src
		ex.Source.Text = clip(src.Text, 700)
		for i := range ex.List {
			p, err := text(ex.List[i].DocID)
			if err != nil {
				return err
			}
			ex.List[i].Text = clip(p.Title+" "+p.Text, 240)
			if p.Title == "" {
				ex.List[i].Text = clip(p.Text, 240)
			}
		}
		ex.Answer = clip(ex.Answer, 400)
		return nil
	}
	for t, s := range b.examples {
		exs := s.sorted()
		for i := range exs {
			if err := fill(&exs[i]); err != nil {
				return err
			}
		}
		d.Examples[t] = exs
	}
	b.dropN = map[string]int64{}
	for _, a := range b.agg {
		for k, n := range a.drops {
			b.dropN[k] += n
		}
	}
	for _, key := range pipeline.SortedKeys(b.dropped) {
		exs := b.dropped[key].sorted()
		for i := range exs {
			if err := fill(&exs[i]); err != nil {
				return err
			}
		}
		stage, reason, _ := strings.Cut(key, "/")
		d.Dropped = append(d.Dropped, DropExamples{Stage: stage, Reason: reason, Count: b.dropN[key], Examples: exs})
	}
	slices.SortStableFunc(d.Dropped, func(x, y DropExamples) int {
		return cmp.Or(cmp.Compare(stageOrder(x.Stage), stageOrder(y.Stage)), cmp.Compare(y.Count, x.Count), cmp.Compare(x.Reason, y.Reason))
	})
	return nil
}

func stageOrder(s string) int {
	return slices.Index([]string{"filter", "mine", "label", "teacher", "export"}, s)
}

// funnel orders the query types and lays out the steps with their drops.
func (b *builder) funnel() {
	d := b.d
	for _, t := range b.cfg.QueryTypes {
		if b.agg[t] != nil {
			d.Types = append(d.Types, t)
		}
	}
	for _, t := range pipeline.SortedKeys(b.agg) {
		if !slices.Contains(d.Types, t) {
			d.Types = append(d.Types, t)
		}
	}
	per := func(f func(a *typeAgg) int64) (int64, []int64) {
		var total int64
		out := make([]int64, len(d.Types))
		for i, t := range d.Types {
			out[i] = f(b.agg[t])
			total += out[i]
		}
		return total, out
	}
	step := func(name string, f func(a *typeAgg) int64) Step {
		total, pt := per(f)
		return Step{Name: name, Total: total, PerType: pt}
	}
	drops := func(stage string, keep func(reason string) bool) []Drop {
		reasons := map[string]bool{}
		for _, a := range b.agg {
			for k := range a.drops {
				if s, r, _ := strings.Cut(k, "/"); s == stage && keep(r) {
					reasons[r] = true
				}
			}
		}
		var out []Drop
		for _, r := range pipeline.SortedKeys(reasons) {
			total, pt := per(func(a *typeAgg) int64 { return a.drops[stage+"/"+r] })
			out = append(out, Drop{Stage: stage, Reason: r, Total: total, PerType: pt})
		}
		slices.SortStableFunc(out, func(x, y Drop) int { return cmp.Compare(y.Total, x.Total) })
		return out
	}
	all := func(string) bool { return true }
	slots := step("query slots", func(a *typeAgg) int64 { return a.slots })
	slots.Drops = drops("filter", func(r string) bool { return slices.Contains(unanswered, r) })
	answered := step("answered by the LLM", func(a *typeAgg) int64 { return a.answered })
	answered.Drops = drops("filter", func(r string) bool { return !slices.Contains(unanswered, r) && !slices.Contains(duplicates, r) })
	parsed := step("parsed", func(a *typeAgg) int64 { return a.parsed })
	parsed.Drops = drops("filter", func(r string) bool { return slices.Contains(duplicates, r) })
	unique := step("unique", func(a *typeAgg) int64 { return a.unique })
	unique.Drops = drops("mine", all)
	mined := step(MinedStep, func(a *typeAgg) int64 { return a.mined })
	if total, pt := per(func(a *typeAgg) int64 { return a.mined - a.labelled }); total > 0 {
		mined.Drops = []Drop{{Stage: "label", Reason: "not_labelled (teacher failed or not run)", Total: total, PerType: pt}}
	}
	labelled := step("labelled by the teacher", func(a *typeAgg) int64 { return a.labelled })
	labelled.Drops = drops("teacher", all)
	kept := step("kept by the teacher filters", func(a *typeAgg) int64 { return a.kept })
	kept.Drops = drops("export", all)
	exported := step("exported", func(a *typeAgg) int64 { return a.exported })
	d.Funnel = []Step{slots, answered, parsed, unique, mined, labelled, kept, exported}
	d.Exported = exported.Total
	d.Train, _ = per(func(a *typeAgg) int64 { return a.train })
	d.Dev, _ = per(func(a *typeAgg) int64 { return a.dev })
	for _, t := range d.Types {
		a := b.agg[t]
		d.QueryWords = append(d.QueryWords, a.words)
		d.Answered = append(d.Answered, a.answered)
		d.CopiedDrops = append(d.CopiedDrops, a.drops["filter/copied_passage"])
	}
}

// MinedStep names the funnel step of the queries mining keeps: their source
// passage came back in the first-pass top --roundtrip-k (the round trip)
// and they have at least --min-candidates candidates; the step above lists
// the drops of both.
const MinedStep = "kept by the first-pass filters"

// stageRows reads each stage's time and its main count.
func stageRows(stats map[string]pipeline.StageStats) []StageRow {
	main := []struct{ stage, unit string }{
		{"corpus", "passages"}, {"generate", "answers"}, {"filter", "answers"},
		{"mine", "queries"}, {"label", "pairs_scored"}, {"export", "rows"},
	}
	var out []StageRow
	for _, m := range main {
		s, ok := stats[m.stage]
		if !ok {
			continue
		}
		r := stageRow(m.stage, m.unit, s)
		if p := s.Paid; p != nil && !p.Finished.Equal(s.Finished) {
			pr := stageRow(m.stage, m.unit, *p)
			r.Paid = &pr
		}
		out = append(out, r)
	}
	return out
}

// stageRow is one run of a stage: its time and its main count.
func stageRow(stage, unit string, s pipeline.StageStats) StageRow {
	r := StageRow{Stage: stage, Seconds: s.Seconds, Counts: s.Counts, Unit: unit}
	if !s.Finished.IsZero() {
		r.Finished = s.Finished.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	c := s.Counts
	switch stage {
	case "mine":
		r.CutAgain, r.CutAgainWhat = c["texts_cut_again"], "texts cut again"
		r.Items = c["kept"]
		for k, v := range c {
			if strings.HasPrefix(k, "drop_") {
				r.Items += v
			}
		}
	case "label":
		r.Items, r.Unit = c["pairs_scored"], "pairs scored"
		r.CutAgain, r.CutAgainWhat = c["candidates_cut_again"], "candidates cut again"
	case "export":
		r.Items = c["rows_train"] + c["rows_dev"]
	default:
		r.Items = c[unit]
	}
	return r
}

// runFacts reads meta/endpoints and the manifest's run facts.
func (b *builder) runFacts() error {
	var eps []Endpoint
	ok, err := b.st.GetJSON(dataset.MetaEndpoints, &eps)
	if err != nil {
		return err
	}
	if ok {
		b.d.HasEndpoints = true
		for i := range eps {
			eps[i].URL = redact.Text(eps[i].URL)
		}
		b.d.Endpoints = eps
	}
	if b.o.Manifest == "" {
		return nil
	}
	raw, err := os.ReadFile(b.o.Manifest)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var m struct {
		Run map[string]any `json:"run"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("report: manifest %s: %w", b.o.Manifest, err)
	}
	b.d.RunFacts = flatten("", Redact(m.Run))
	return nil
}

// settings lists the run's settings and what produced the data.
func (b *builder) settings() error {
	cfg := b.cfg
	raw, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	b.d.Settings = flatten("", Redact(m))
	tm, pool, err := stages.Provenance(cfg)
	if err != nil {
		return err
	}
	sha, err := dataset.CorpusSHA256(b.st)
	if err != nil {
		return err
	}
	p := []KV{
		{"synthq version", stages.Version},
		{"generator (LLM)", cfg.Generator()},
		{"teacher", cfg.Teacher()},
		{"first-pass retrievers", strings.Join(cfg.Retrievers, ", ")},
	}
	if len(cfg.EmbedModels) > 0 {
		p = append(p, KV{"embedding models", strings.Join(cfg.EmbedModels, ", ")})
	}
	p = append(p, KV{"seed", strconv.FormatUint(cfg.Seed, 10)}, KV{"config fingerprint", cfg.Fingerprint()},
		KV{"corpus sha256", sha}, KV{"few-shot pool", pool})
	for _, t := range pipeline.SortedKeys(tm) {
		p = append(p, KV{"template " + t, tm[t]})
	}
	b.d.Provenance = p
	return nil
}

// flatten lists a JSON value's leaves as dotted keys in sorted order.
func flatten(prefix string, v any) []KV {
	switch x := v.(type) {
	case map[string]any:
		var out []KV
		for _, k := range pipeline.SortedKeys(x) {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			out = append(out, flatten(key, x[k])...)
		}
		return out
	case nil:
		return []KV{{prefix, "—"}}
	case string:
		return []KV{{prefix, x}}
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			if s, ok := e.(string); ok {
				parts[i] = s
				continue
			}
			parts[i] = jsonText(e)
		}
		return []KV{{prefix, strings.Join(parts, ", ")}}
	}
	return []KV{{prefix, jsonText(v)}}
}

// jsonText is v as JSON, without HTML escaping (the template escapes).
func jsonText(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	cut := strings.LastIndex(s[:n], " ")
	if cut < n/2 {
		cut = n
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
	}
	return s[:cut] + " …"
}

func utf8Start(c byte) bool { return c&0xC0 != 0x80 }

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@%+=,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sampler keeps the k items of smallest hash (ties by insertion order): a
// seeded sample of fixed size from a stream of any length.
type sampler[T any] struct {
	k     int
	items []sampled[T]
}

type sampled[T any] struct {
	h uint64
	v T
}

// offer considers an item; v is called only if the item is kept.
func (s *sampler[T]) offer(h uint64, v func() T) {
	if s.k <= 0 || len(s.items) == s.k && h >= s.items[len(s.items)-1].h {
		return
	}
	i, _ := slices.BinarySearchFunc(s.items, h, func(e sampled[T], h uint64) int {
		if e.h <= h {
			return -1
		}
		return 1
	})
	s.items = slices.Insert(s.items, i, sampled[T]{h, v()})
	if len(s.items) > s.k {
		s.items = s.items[:s.k]
	}
}

func (s *sampler[T]) sorted() []T {
	out := make([]T, len(s.items))
	for i, e := range s.items {
		out[i] = e.v
	}
	return out
}
