package dataset

import (
	"context"
	"errors"
	"math"
	"sort"
	"strconv"

	"github.com/synthq/synthq/pipeline"
)

// Targets are the set-wide quantities the export applies: percentiles of all
// candidate scores (over the whole set, never per batch), the top-score
// threshold and the dev split. Computing them reads the labelled table twice
// and sends no request, so changing a threshold re-exports without scoring.
type Targets struct {
	Scores    int      `json:"candidate_scores"`
	P1        float64  `json:"p1"`
	P99       float64  `json:"p99"`
	Min       float64  `json:"min"`
	Max       float64  `json:"max"`
	MinTop    float64  `json:"-"`                 // -Inf when the filter is off
	Threshold *float64 `json:"min_top_threshold"` // MinTop for the manifest; null when off
	Kept      int      `json:"kept"`
	DevSource int      `json:"dev_passages"`
	dev       map[string]bool
	counts    map[string]int64
	invalid   *BadRecordError // the first list that failed its check
}

// FirstInvalid is the first labelled list that failed its check (counted
// as drop_invalid_record), naming its key and what is wrong; nil when
// none did.
func (t *Targets) FirstInvalid() error {
	if t.invalid == nil {
		return nil
	}
	return t.invalid
}

// percentile is numpy's default (linear interpolation between order statistics).
func percentile(sorted []float32, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := p / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	frac := pos - float64(lo)
	return float64(sorted[lo]) + frac*(float64(sorted[hi])-float64(sorted[lo]))
}

// orderKey maps a float32 to a uint32 with the same order.
func orderKey(f float32) uint32 {
	k := math.Float32bits(f)
	if k&0x80000000 != 0 {
		return ^k
	}
	return k | 0x80000000
}

func fromOrderKey(k uint32) float32 {
	if k&0x80000000 != 0 {
		return math.Float32frombits(k &^ 0x80000000)
	}
	return math.Float32frombits(^k)
}

// quantiles finds exact order statistics of a stream of float32 values in
// bounded memory, whatever the number of values: a first pass counts values
// per high 16 bits of their order key (65,536 counters), a second counts the
// low 16 bits of the values in the few high buckets that hold a wanted rank.
// Together they give the exact value at each rank, so percentiles equal
// numpy's over the sorted array without holding it.
type quantiles struct {
	n    int64
	high [1 << 16]int64
	low  map[uint32]*[1 << 16]int64 // high bucket -> counts of low bits
}

func (q *quantiles) addHigh(f float32) { q.high[orderKey(f)>>16]++; q.n++ }

// locate returns the high bucket of rank r (0-based) and the rank within it.
func (q *quantiles) locate(r int64) (uint32, int64) {
	for b := range q.high {
		if r < q.high[b] {
			return uint32(b), r
		}
		r -= q.high[b]
	}
	return 1<<16 - 1, 0
}

// ranks are the order statistics percentile p interpolates between.
func (q *quantiles) ranks(p float64) (lo, hi int64, frac float64) {
	pos := p / 100 * float64(q.n-1)
	lo = int64(math.Floor(pos))
	return lo, min(lo+1, q.n-1), pos - float64(lo)
}

// want registers the ranks of p for the second pass.
func (q *quantiles) want(p float64) {
	if q.low == nil {
		q.low = map[uint32]*[1 << 16]int64{}
	}
	lo, hi, _ := q.ranks(p)
	for _, r := range []int64{lo, hi} {
		b, _ := q.locate(r)
		if q.low[b] == nil {
			q.low[b] = new([1 << 16]int64)
		}
	}
}

func (q *quantiles) addLow(f float32) {
	k := orderKey(f)
	if c := q.low[k>>16]; c != nil {
		c[k&0xffff]++
	}
}

func (q *quantiles) at(r int64) float64 {
	b, r := q.locate(r)
	c := q.low[b]
	for l := range c {
		if r < c[l] {
			return float64(fromOrderKey(b<<16 | uint32(l)))
		}
		r -= c[l]
	}
	return math.NaN() // not reached when want was called for r
}

// percentile is numpy's linear-interpolation percentile p of the values.
func (q *quantiles) percentile(p float64) float64 {
	lo, hi, frac := q.ranks(p)
	a, b := q.at(lo), q.at(hi)
	return a + frac*(b-a)
}

// Labels reads labelled lists (qid, JSON-encoded Labelled) in qid order:
// from one store, or merged from the stores of several shards.
type Labels func(ctx context.Context, fn func(qid string, v []byte) error) error

// StoreLabels reads the labelled lists of one store.
func StoreLabels(st *pipeline.Store) Labels {
	return func(ctx context.Context, fn func(qid string, v []byte) error) error {
		return st.Scan(pipeline.PrefixLabel, fn)
	}
}

// scanRaw calls fn with the raw scores of every labelled list.
func scanRaw(ctx context.Context, labels Labels, fn func([]float32)) error {
	return labels(ctx, func(qid string, v []byte) error {
		l, err := DecodeChecked[Labelled](pipeline.PrefixLabel+qid, v)
		var bad *BadRecordError
		if errors.As(err, &bad) {
			return nil // skipped; export records it (see ScanJSON)
		}
		if err != nil {
			return err
		}
		fn(l.Raw)
		return ctx.Err()
	})
}

// ComputeTargets reads the labelled lists of st and derives the targets. It
// reads the labelled table three times (two passes for exact percentiles in
// bounded memory, one for the filters and the split) and holds only the
// source passage ids beside a fixed 0.5 MB of counters.
func ComputeTargets(ctx context.Context, st *pipeline.Store, cfg *pipeline.Config) (*Targets, error) {
	return TargetsOf(ctx, StoreLabels(st), cfg)
}

// TargetsOf is ComputeTargets over labelled lists read by labels (one
// store's, or the merged lists of several shards).
func TargetsOf(ctx context.Context, st Labels, cfg *pipeline.Config) (*Targets, error) {
	q := &quantiles{}
	t := &Targets{MinTop: math.Inf(-1), dev: map[string]bool{}, counts: map[string]int64{}}
	if err := scanRaw(ctx, st, func(raw []float32) {
		for _, s := range raw {
			q.addHigh(s)
		}
	}); err != nil {
		return nil, err
	}
	t.Scores = int(q.n)
	if q.n > 0 {
		ps := []float64{0, 1, 99, 100}
		if cfg.MinTopPercentile > 0 {
			ps = append(ps, cfg.MinTopPercentile)
		}
		for _, p := range ps {
			q.want(p)
		}
		if err := scanRaw(ctx, st, func(raw []float32) {
			for _, s := range raw {
				q.addLow(s)
			}
		}); err != nil {
			return nil, err
		}
		t.P1, t.P99 = q.percentile(1), q.percentile(99)
		t.Min, t.Max = q.percentile(0), q.percentile(100)
		if cfg.MinTopPercentile > 0 {
			t.MinTop = q.percentile(cfg.MinTopPercentile)
			t.Threshold = &t.MinTop
		}
	}
	var sources []string
	seen := map[string]bool{}
	if err := st(ctx, func(qid string, v []byte) error {
		l, err := DecodeChecked[Labelled](pipeline.PrefixLabel+qid, v)
		var bad *BadRecordError
		if errors.As(err, &bad) {
			t.counts["drop_"+DropInvalidRecord]++
			if t.invalid == nil {
				t.invalid = bad
			}
			return nil
		}
		if err != nil {
			return err
		}
		if _, drop := t.Row(&l, cfg); drop != "" {
			t.counts["drop_"+drop]++
			return nil
		}
		t.Kept++
		if !seen[l.DocID] {
			seen[l.DocID] = true
			sources = append(sources, l.DocID)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// Dev split by source passage: order passages by a seeded hash and take
	// the first round(fraction·n), so no passage is in both splits.
	seed := strconv.FormatUint(cfg.Seed, 10)
	sort.Slice(sources, func(i, j int) bool {
		hi, hj := pipeline.Hash64(seed, sources[i]), pipeline.Hash64(seed, sources[j])
		if hi != hj {
			return hi < hj
		}
		return sources[i] < sources[j]
	})
	nDev := int(math.Round(cfg.DevFraction * float64(len(sources))))
	for _, s := range sources[:nDev] {
		t.dev[s] = true
	}
	t.DevSource = nDev
	return t, nil
}

// DropCounts are the lists the targets drop, by counter name
// ("drop_<reason>").
func (t *Targets) DropCounts() map[string]int64 { return t.counts }

// Split names the split of a source passage.
func (t *Targets) Split(docID string) string {
	if t.dev[docID] {
		return "dev"
	}
	return "train"
}

// Row orders a labelled list by teacher score (descending; ties by
// first-pass rank, then passage id), applies the filters and keeps the top
// cfg.ListSize, the source passage always included. It returns the kept
// candidate indices in output order, or a drop reason.
func (t *Targets) Row(l *Labelled, cfg *pipeline.Config) ([]int, string) {
	idx := make([]int, len(l.DocIDs))
	for i := range idx {
		idx[i] = i
	}
	rank := func(i int) int32 {
		if l.Ranks[i] == 0 {
			return math.MaxInt32
		}
		return l.Ranks[i]
	}
	sort.SliceStable(idx, func(a, b int) bool {
		i, j := idx[a], idx[b]
		if l.Raw[i] != l.Raw[j] {
			return l.Raw[i] > l.Raw[j]
		}
		if rank(i) != rank(j) {
			return rank(i) < rank(j)
		}
		return l.DocIDs[i] < l.DocIDs[j]
	})
	if len(idx) == 0 {
		return nil, DropFewCandidates
	}
	if cfg.RequireSourceTop1 && l.DocIDs[idx[0]] != l.DocID {
		return nil, DropSourceNotTop1
	}
	if float64(l.Raw[idx[0]]) < t.MinTop {
		return nil, DropLowTopScore
	}
	if len(idx) > cfg.ListSize {
		top := idx[:cfg.ListSize]
		has := false
		for _, i := range top {
			if l.DocIDs[i] == l.DocID {
				has = true
			}
		}
		if !has {
			for _, i := range idx[cfg.ListSize:] {
				if l.DocIDs[i] == l.DocID {
					top[len(top)-1] = i
				}
			}
		}
		idx = top
	}
	return idx, ""
}

// Normalise maps a raw teacher score to the exported target under cfg.Norm.
func (t *Targets) Normalise(s float32, cfg *pipeline.Config) float32 {
	var lo, hi float64
	switch cfg.Norm {
	case "none":
		return s
	case "minmax":
		lo, hi = t.Min, t.Max
	default:
		lo, hi = t.P1, t.P99
	}
	if hi <= lo {
		if float64(s) >= hi {
			return 1
		}
		return 0
	}
	return float32(math.Min(1, math.Max(0, (float64(s)-lo)/(hi-lo))))
}
