package retriever

import (
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// BM25Params are the BM25 parameters, used as given, zeros included (b = 0
// turns length normalisation off). A nil *BM25Params given to
// NewBM25Builder means Anserini's BEIR settings (k1 = 0.9, b = 0.4);
// EnsureDefaults fills zero fields with them for a caller whose zero means
// "the default".
type BM25Params struct {
	K1 float32
	B  float32
}

// EnsureDefaults fills zero fields with Anserini's BEIR settings.
func (p *BM25Params) EnsureDefaults() {
	if p.K1 == 0 {
		p.K1 = 0.9
	}
	if p.B == 0 {
		p.B = 0.4
	}
}

// BM25Builder accumulates passages for a BM25 index. It keeps each passage's
// term counts (about 6 bytes per distinct term per passage) until Build. It is
// not safe for concurrent use.
type BM25Builder struct {
	an       *Analyzer
	params   BM25Params
	ids      []string
	dict     map[string]uint32 // term -> term id
	surface  map[string]int32  // surface token -> term id, or -1 for a stopword
	docStart []int             // offsets into docTerms / docTF, len = docs+1 (int: past 2³² postings)
	docTerms []uint32
	docTF    []uint16
	norms    []uint8
	sumLen   int64
	scratch  []uint32
}

// NewBM25Builder starts an index with the given analyzer (nil: English) and
// parameters (nil: defaults; given parameters are used as they are, zeros
// included).
func NewBM25Builder(an *Analyzer, params *BM25Params) *BM25Builder {
	if an == nil {
		an = NewEnglishAnalyzer()
	}
	var p BM25Params
	if params != nil {
		p = *params // as given: B = 0 turns length normalisation off
	} else {
		p.EnsureDefaults()
	}
	return &BM25Builder{
		an: an, params: p,
		dict:     make(map[string]uint32),
		surface:  make(map[string]int32),
		docStart: []int{0},
	}
}

func (b *BM25Builder) termID(tok string) int32 {
	if id, ok := b.surface[tok]; ok {
		return id
	}
	var id int32 = -1
	low := toLowerASCIIFast(tok)
	if _, stop := b.an.stop[low]; !stop {
		t := low
		if b.an.stem {
			t = porterStem(low)
		}
		tid, ok := b.dict[t]
		if !ok {
			tid = uint32(len(b.dict))
			b.dict[t] = tid
		}
		id = int32(tid)
	}
	b.surface[tok] = id
	return id
}

// Add indexes one passage. Passages are numbered in the order added; equal
// scores rank the earlier passage first, as Lucene does.
func (b *BM25Builder) Add(id, text string) {
	terms := b.scratch[:0]
	b.an.tokens(text, func(tok string) {
		if t := b.termID(tok); t >= 0 {
			terms = append(terms, uint32(t))
		}
	})
	b.scratch = terms
	length := len(terms)
	slices.Sort(terms)
	for i := 0; i < len(terms); {
		j := i + 1
		for j < len(terms) && terms[j] == terms[i] {
			j++
		}
		tf := j - i
		if tf > math.MaxUint16 {
			tf = math.MaxUint16
		}
		b.docTerms = append(b.docTerms, terms[i])
		b.docTF = append(b.docTF, uint16(tf))
		i = j
	}
	b.docStart = append(b.docStart, len(b.docTerms))
	b.ids = append(b.ids, id)
	b.norms = append(b.norms, intToByte4(length))
	b.sumLen += int64(length)
}

// AddBatch indexes passages like Add, analysing them on workers goroutines
// (0: GOMAXPROCS): each part goes to its own builder with its own
// vocabulary, and the parts are merged in order by renumbering their term
// ids, so the index equals one built by Add in the same order. Cost: the
// analysis divided by the workers, plus one array pass per part.
func (b *BM25Builder) AddBatch(ids, texts []string, workers int) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	per := (len(ids) + workers - 1) / workers
	if workers == 1 || per < 256 {
		for i := range ids {
			b.Add(ids[i], texts[i])
		}
		return
	}
	parts := make([]*BM25Builder, 0, workers)
	var wg sync.WaitGroup
	for lo := 0; lo < len(ids); lo += per {
		hi := min(lo+per, len(ids))
		sub := NewBM25Builder(b.an, &b.params)
		parts = append(parts, sub)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				sub.Add(ids[i], texts[i])
			}
		}()
	}
	wg.Wait()
	for _, sub := range parts {
		b.merge(sub)
	}
}

// merge appends sub's passages, mapping its term ids to b's.
func (b *BM25Builder) merge(sub *BM25Builder) {
	terms := make([]string, len(sub.dict))
	for term, local := range sub.dict {
		terms[local] = term
	}
	remap := make([]uint32, len(terms))
	for local, term := range terms { // in first-seen order: ids as Add would give
		g, ok := b.dict[term]
		if !ok {
			g = uint32(len(b.dict))
			b.dict[term] = g
		}
		remap[local] = g
	}
	base := len(b.docTerms)
	for _, s := range sub.docStart[1:] {
		b.docStart = append(b.docStart, base+s)
	}
	for _, t := range sub.docTerms {
		b.docTerms = append(b.docTerms, remap[t])
	}
	b.docTF = append(b.docTF, sub.docTF...)
	b.ids = append(b.ids, sub.ids...)
	b.norms = append(b.norms, sub.norms...)
	b.sumLen += sub.sumLen
}

// Build turns the added passages into a searchable index. The builder must not
// be used afterwards. Cost: a sort of the vocabulary and two passes over the
// postings.
func (b *BM25Builder) Build() *BM25 { return b.BuildProgress(nil) }

// The costs of Build's three passes over the postings, relative to one
// another, per posting: renumbering the terms (the counting pass), filling
// the postings, and the score bounds (a selection over each term's
// postings) with the id table. Measured on the synthetic corpus at 1M
// passages, 52.9M postings: 0.24 s, 1.30 s and 0.70 s (BENCHMARKS.md
// "Millions of passages"; 0.06, 0.09 and 0.12 s at 100k).
const (
	BM25WeightCount  = 1
	BM25WeightFill   = 5
	BM25WeightBounds = 3
)

// BM25BuildShare is what Build costs against the analysis (Add, AddBatch)
// of the same passages: about 1/BM25BuildShare of it. Measured on the
// synthetic corpus: 2.25 s against 28.3 s at 1M passages (1/12.6), 0.27 s
// against 1.57 s at 100k (1/5.8, where the whole build takes under 2 s).
// A progress bar over both counts the build as passages/BM25BuildShare
// units.
const BM25BuildShare = 12

// BuildProgress is Build reporting its progress to progress (nil: none) as
// (done, total) in units of postings, each of the three passes over them
// weighted by its cost (BM25WeightCount, …: 9 units a posting in all), so that the
// last pass, which used to go unreported, takes its share of the bar.
func (b *BM25Builder) BuildProgress(progress func(done, total int64)) *BM25 {
	nTerms := len(b.dict)
	n := len(b.ids)
	postings := int64(len(b.docTerms))
	w := [3]int64{BM25WeightCount, BM25WeightFill, BM25WeightBounds}
	total := (w[0] + w[1] + w[2]) * postings
	report := func(done int64) {
		if progress != nil {
			progress(done, total)
		}
	}
	// Term ids in sorted order of the terms: the dictionary is then a sorted
	// table (binary search), as the index file keeps it.
	terms := make([]string, nTerms)
	for t, id := range b.dict {
		terms[id] = t
	}
	order := make([]uint32, nTerms)
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(x, y uint32) int { return strings.Compare(terms[x], terms[y]) })
	newID := make([]uint32, nTerms)
	termOff := make([]uint64, nTerms+1)
	size := 0
	for _, old := range order {
		size += len(terms[old])
	}
	termBytes := make([]byte, 0, size)
	for i, old := range order {
		newID[old] = uint32(i)
		termBytes = append(termBytes, terms[old]...)
		termOff[i+1] = uint64(len(termBytes))
	}
	terms, order = nil, nil
	start := make([]uint64, nTerms+1)
	for i, t := range b.docTerms {
		if i&(1<<22-1) == 0 {
			report(w[0] * int64(i))
		}
		t = newID[t]
		b.docTerms[i] = t
		start[t+1]++
	}
	report(w[0] * postings)
	for i := 1; i <= nTerms; i++ {
		start[i] += start[i-1]
	}
	avgdl := float32(1)
	if n > 0 {
		avgdl = float32(float64(b.sumLen) / float64(n))
	}
	// Lucene's per-norm cache: 1 / (k1 · (1 - b + b · dl / avgdl)).
	normInv := normInvTable(b.params, avgdl)
	// Each posting keeps 1 / (1 + tf · normInv[norm]), so a query term adds
	// w - w·inv: no division and no norm lookup at search time.
	docs := make([]uint32, len(b.docTerms))
	inv := make([]float32, len(b.docTerms))
	fill := slices.Clone(start[:nTerms])
	for d := 0; d+1 < len(b.docStart); d++ {
		if d%65536 == 0 {
			report(w[0]*postings + w[1]*int64(b.docStart[d]))
		}
		ni := normInv[b.norms[d]]
		for p := b.docStart[d]; p < b.docStart[d+1]; p++ {
			t := b.docTerms[p]
			docs[fill[t]] = uint32(d)
			inv[fill[t]] = 1 / (1 + float32(b.docTF[p])*ni)
			fill[t]++
		}
	}
	idOff := make([]uint64, n+1)
	size = 0
	for _, id := range b.ids {
		size += len(id)
	}
	var ids strings.Builder
	ids.Grow(size)
	for i, id := range b.ids {
		ids.WriteString(id)
		idOff[i+1] = uint64(ids.Len())
	}
	ix := &BM25{an: b.an, params: b.params, n: n, avgdl: avgdl,
		idOff: idOff, ids: ids.String(), termOff: termOff, termBytes: termBytes,
		start: start, docs: docs, inv: inv, norms: b.norms}
	ix.bounds(func(done int64) { report((w[0]+w[1])*postings + w[2]*done) })
	ix.initScratch()
	*b = BM25Builder{}
	report(total)
	return ix
}

// normInvTable is Lucene's per-norm cache: 1 / (k1 · (1 - b + b · dl /
// avgdl)) for each one-byte norm.
func normInvTable(p BM25Params, avgdl float32) *[256]float32 {
	var t [256]float32
	for i := range t {
		t[i] = 1 / (p.K1 * ((1 - p.B) + p.B*float32(byte4ToInt(uint8(i)))/avgdl))
	}
	return &t
}

// boundRanks are the ranks whose inv bm25 keeps per term: rank 1 (the
// smallest inv: w·(1 - inv) bounds what the term adds to any passage,
// MaxScore's upper bound) and ranks 10, 100 and 1000 (at least that many
// passages score w·(1 - inv) or more: a floor for the k-th best score before
// any passage is scored).
var boundRanks = [4]int{1, 10, 100, 1000}

// bounds computes rankInv from the postings, reporting the postings done
// so far to progress (nil: none) every few thousand terms. Cost: a selection
// (linear on average) over each term's postings.
func (ix *BM25) bounds(progress func(postingsDone int64)) {
	nTerms := len(ix.start) - 1
	ix.rankInv = make([]float32, 4*nTerms)
	var scratch []float32
	for t := 0; t < nTerms; t++ {
		if t%4096 == 0 && progress != nil {
			progress(int64(ix.start[t]))
		}
		inv := ix.inv[ix.start[t]:ix.start[t+1]]
		r := ix.rankInv[4*t : 4*t+4]
		for i := range r {
			r[i] = 1 // fewer postings than the rank: a floor of 0
		}
		m := float32(1)
		for _, v := range inv {
			m = min(m, v)
		}
		r[0] = m
		if len(inv) < boundRanks[1] {
			continue
		}
		scratch = append(scratch[:0], inv...)
		part := scratch
		for i := 3; i >= 1; i-- { // the largest rank first: the smaller ones are then among part's first
			k := boundRanks[i]
			if len(part) < k {
				continue
			}
			r[i] = nthSmallest(part, k-1)
			part = part[:k]
		}
	}
}

// nthSmallest reorders v so that v[n] is the value sorted order would put
// there, every value before it no greater, and returns it (Hoare's
// quickselect, median-of-three pivots: deterministic).
func nthSmallest(v []float32, n int) float32 {
	lo, hi := 0, len(v)-1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if v[m] < v[lo] {
			v[m], v[lo] = v[lo], v[m]
		}
		if v[hi] < v[lo] {
			v[hi], v[lo] = v[lo], v[hi]
		}
		if v[hi] < v[m] {
			v[hi], v[m] = v[m], v[hi]
		}
		pivot := v[m]
		i, j := lo, hi
		for i <= j {
			for v[i] < pivot {
				i++
			}
			for v[j] > pivot {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case n <= j:
			hi = j
		case n >= i:
			lo = i
		default:
			return v[n]
		}
	}
	return v[n]
}

func (ix *BM25) initScratch() {
	n := ix.n
	ix.scratch.New = func() any { return &searchScratch{acc: make([]float32, n)} }
	ix.buildDense()
	ix.buildWindowBounds()
	ix.buildTermHash()
}

// minDenseDiv: a term in at least one passage of minDenseDiv has a
// termBits, so MaxScore tells from bits whether a candidate holds it and,
// when its tf is 1 (most postings), what it adds (from the passage's norm),
// without reading its postings. Each costs 17 bytes per 64 passages: at
// most 8.5 bytes per posting of the term; 57 MB for the 220 such terms of
// the 1M Zipf corpus (13 % of its 443 MB index). One in 16 (25 MB) was
// 1.2× slower a query at 1M (BENCHMARKS.md, "Third pass").
const minDenseDiv = 32

// termBits is a frequent term's postings as bitmaps over the passages.
type termBits struct {
	// has: bit d%64 of has[d/64] is set when passage d holds the term;
	// one: when, besides, its posting's inv is tf1Inv[norms[d]] (tf 1).
	// Apart, so a window's has words are one array the candidate filter
	// reads in place.
	has, one []uint64
	cum      []uint32 // postings before passage 512·i, for the inv of the others
}

// pos is the position among the term's postings of passage d's, which it
// holds.
func (tb *termBits) pos(d uint32) uint32 {
	w := d >> 6
	p := tb.cum[w>>3] + uint32(bits.OnesCount64(tb.has[w]&(1<<(d&63)-1)))
	for i := w &^ 7; i < w; i++ {
		p += uint32(bits.OnesCount64(tb.has[i]))
	}
	return p
}

// buildDense makes the termBits of the frequent terms (at least n /
// minDenseDiv postings). It is derived from the postings and norms, not
// stored in the index file: cost one pass over those terms' postings
// (about 40 ms for 11.5M postings at 1M passages) on building or opening.
// The one bits are set where the posting's inv equals tf1Inv of its
// passage's norm bit for bit, so a search adding tf1Inv's contribution
// adds exactly what the posting holds.
func (ix *BM25) buildDense() {
	ix.denseIDs, ix.dense = nil, nil
	if ix.n == 0 {
		return
	}
	ni := normInvTable(ix.params, ix.avgdl)
	for i := range ix.tf1Inv {
		ix.tf1Inv[i] = 1 / (1 + float32(1)*ni[i])
	}
	words := (ix.n + maxWindow - 1) / maxWindow * (maxWindow / 64) // whole windows: a window's words are one array
	minDF := max(uint64(ix.n/minDenseDiv), 1)
	for t := 0; t+1 < len(ix.start); t++ {
		lo, hi := ix.start[t], ix.start[t+1]
		if hi-lo < minDF {
			continue
		}
		tb := termBits{has: make([]uint64, words), one: make([]uint64, words), cum: make([]uint32, (words+7)/8)}
		inv := ix.inv[lo:hi]
		for p, d := range ix.docs[lo:hi] {
			tb.has[d>>6] |= 1 << (d & 63)
			if inv[p] == ix.tf1Inv[ix.norms[d]] {
				tb.one[d>>6] |= 1 << (d & 63)
			}
		}
		c := uint32(0)
		for w := range words {
			if w%8 == 0 {
				tb.cum[w/8] = c
			}
			c += uint32(bits.OnesCount64(tb.has[w]))
		}
		ix.denseIDs = append(ix.denseIDs, uint32(t))
		ix.dense = append(ix.dense, tb)
	}
}

// minWindowBoundDiv: a term in at least one passage of minWindowBoundDiv
// has window bounds, 4 bytes per maxWindow passages (1.7 MB for the 1,680
// such terms of the 1M Zipf corpus).
const minWindowBoundDiv = 256

// buildWindowBounds keeps, for the terms in at least one passage of
// minWindowBoundDiv, the smallest inv of their postings in each window of
// maxWindow passages: what the term can add to a passage of that window
// (block-max bounds, Ding & Suel 2011, per window of MaxScore). Derived from
// the postings on building or opening, not stored: one pass over those
// terms' postings.
func (ix *BM25) buildWindowBounds() {
	ix.wboundIDs, ix.wbounds = nil, nil
	windows := (ix.n + maxWindow - 1) / maxWindow
	minDF := uint64(max(ix.n/minWindowBoundDiv, 1))
	for t := 0; t+1 < len(ix.start); t++ {
		lo, hi := ix.start[t], ix.start[t+1]
		if hi-lo < minDF {
			continue
		}
		wb := make([]float32, windows)
		for i := range wb {
			wb[i] = 1
		}
		inv := ix.inv[lo:hi]
		for p, d := range ix.docs[lo:hi] {
			w := d / maxWindow
			wb[w] = min(wb[w], inv[p])
		}
		ix.wboundIDs = append(ix.wboundIDs, uint32(t))
		ix.wbounds = append(ix.wbounds, wb)
	}
}

// windowBoundsOf is term t's window bounds, or nil when it has none.
func (ix *BM25) windowBoundsOf(t uint32) []float32 {
	if i, ok := slices.BinarySearch(ix.wboundIDs, t); ok {
		return ix.wbounds[i]
	}
	return nil
}

// denseOf is term t's termBits, or nil when it has none.
func (ix *BM25) denseOf(t uint32) *termBits {
	if i, ok := slices.BinarySearch(ix.denseIDs, t); ok {
		return &ix.dense[i]
	}
	return nil
}

// BM25 is an in-memory inverted index scored as Lucene's BM25Similarity:
// idf = ln(1 + (N - df + 0.5)/(df + 0.5)), document lengths stored with
// Lucene's lossy one-byte norm encoding. Search is safe for concurrent use.
type BM25 struct {
	an        *Analyzer
	params    BM25Params
	n         int      // passages
	idOff     []uint64 // per passage: its id is ids[idOff[d]:idOff[d+1]]
	ids       string   // the passage ids, concatenated (a copy on the heap: hits share it)
	termOff   []uint64 // per term id, in sorted order of the terms: termBytes[termOff[t]:termOff[t+1]]
	termBytes []byte
	start     []uint64 // per term: its postings are docs[start[t]:start[t+1]]
	docs      []uint32
	inv       []float32 // per posting: 1 / (1 + tf · normInv[norm of its passage])
	rankInv   []float32 // per term, 4 each: the inv at each of boundRanks when its postings are sorted by inv
	avgdl     float32
	norms     []uint8      // per passage: its length, Lucene's one-byte norm
	tf1Inv    [256]float32 // per norm: the inv of a posting with tf 1
	denseIDs  []uint32     // the terms with a termBits, ascending
	dense     []termBits   // per denseIDs entry
	wboundIDs []uint32     // the terms with window bounds, ascending (see buildWindowBounds)
	wbounds   [][]float32  // per wboundIDs entry, per window of maxWindow passages: the smallest inv in it (1: none)
	termHash  []uint32     // see buildTermHash
	termSeed  maphash.Seed // termHash's
	scratch   sync.Pool
	unmap     func() error // a loaded index: releases the file mapping
}

type searchScratch struct {
	acc     []float32
	touched []uint32
	terms   []string
	h       hitHeap
	qt      []queryTerm
	cur     []*queryTerm
	cum     []float64
	cumw    []float64      // maxScore's cum for the current window (window bounds)
	ubw     []float64      // and the window bound of each of cur
	c1      [][256]float32 // per query term (by ord): its queryTerm.c1
	win     *windowScratch // maxScore's, made on first use
}

// windowScratch is what maxScore keeps per window: kept between searches so
// a search allocates nothing.
type windowScratch struct {
	acc  [maxWindow]float32                  // per window passage: the partial score (0: not found)
	cand [maxWindow + 1]uint16               // the passages the essential terms found, in the order found (one spare: see addPostings)
	surv [maxWindow / 64]uint64              // the candidates that passed the filter
	wb   [maxBitTerms][maxWindow / 64]uint64 // scattered terms: the passages that hold them
	wpre [maxBitTerms][maxWindow / 64]uint16 // and the postings before each word
	zero [maxWindow / 64]uint64              // a missing filter term's words
	fb   []filterTerm
	// The filter's limits (candidateLimits) and what they were made for:
	// most windows need the last ones again.
	lim    [1 << maxBitTerms]float32
	limKey [maxBitTerms + 1]float64
}

// limFor reports whether ws.lim was made for base and fb's bounds, and
// notes them as its key if not.
func (ws *windowScratch) limFor(base float64, fb []filterTerm) bool {
	var key [maxBitTerms + 1]float64
	key[0] = base
	for i, f := range fb {
		key[i+1] = f.ub
	}
	for i := len(fb) + 1; i < len(key); i++ {
		key[i] = math.Inf(1) // no bound: an absent term's
	}
	if key == ws.limKey {
		return true
	}
	ws.limKey = key
	return false
}

// filterTerm is a non-essential term the candidate filter reads one bit of:
// its bound and its words over the window.
type filterTerm struct {
	ub    float64
	words *[maxWindow / 64]uint64
}

// c1For is the c1 table of the query term at ord (s.c1 is grown to the
// query's terms before any is handed out).
func (s *searchScratch) c1For(ord int) *[256]float32 { return &s.c1[ord] }

// maxBitTerms is the most non-essential terms whose presence the candidate
// filter reads (one bit each, 2^maxBitTerms limits); further ones count with
// their bound.
const maxBitTerms = 4

// candidateLimits fills lim[mask], for each subset mask of fb (bit i: the
// candidate holds fb[i]), with the float32 partial score a candidate must
// exceed to possibly beat the k-th: base (the k-th score less the margin and
// the bounds of the terms not in fb) less the bounds of the terms in mask,
// rounded down so the filter never drops a candidate that could win.
func candidateLimits(lim *[1 << maxBitTerms]float32, fb []filterTerm, base float64) {
	var v [1 << maxBitTerms]float64
	v[0] = base
	for mask := 1; mask < 1<<maxBitTerms; mask++ {
		i := bits.TrailingZeros(uint(mask))
		v[mask] = v[mask&(mask-1)]
		if i < len(fb) {
			v[mask] -= fb[i].ub
		}
	}
	for mask, x := range v {
		f := float32(x)
		if float64(f) > x {
			f = math.Nextafter32(f, float32(math.Inf(-1)))
		}
		lim[mask] = f
	}
}

// Len is the number of indexed passages.
func (ix *BM25) Len() int { return ix.n }

// Postings is the number of (term, passage) entries; each costs 8 bytes
// (passage number and precomputed length-normalised tf).
func (ix *BM25) Postings() int { return len(ix.docs) }

// Terms is the vocabulary size.
func (ix *BM25) Terms() int { return len(ix.termOff) - 1 }

// term is the id of an indexed term: one probe of termHash, most often
// (a binary search of the sorted vocabulary took ~20 cache misses).
func (ix *BM25) term(t string) (uint32, bool) {
	if len(ix.termHash) == 0 {
		return 0, false
	}
	mask := uint64(len(ix.termHash) - 1)
	for i := maphash.String(ix.termSeed, t) & mask; ; i = (i + 1) & mask {
		id := ix.termHash[i]
		if id == 0 {
			return 0, false
		}
		if ix.termAt(int(id-1)) == t {
			return id - 1, true
		}
	}
}

// buildTermHash fills termHash, an open-addressing table of term id + 1
// (0: empty) at least twice the vocabulary's size. Cost: one hash a term
// (about 10 ns), 8 to 16 bytes a term.
func (ix *BM25) buildTermHash() {
	nt := len(ix.termOff) - 1
	size := 1
	for size < 2*nt {
		size <<= 1
	}
	ix.termSeed = maphash.MakeSeed()
	ix.termHash = make([]uint32, size)
	mask := uint64(size - 1)
	for t := 0; t < nt; t++ {
		i := maphash.String(ix.termSeed, ix.termAt(t)) & mask
		for ix.termHash[i] != 0 {
			i = (i + 1) & mask
		}
		ix.termHash[i] = uint32(t + 1)
	}
}

// termAt is term id t's text, a view into the vocabulary (not to be kept).
func (ix *BM25) termAt(t int) string {
	b := ix.termBytes[ix.termOff[t]:ix.termOff[t+1]]
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// id is passage d's id.
func (ix *BM25) id(d uint32) string { return ix.ids[ix.idOff[d]:ix.idOff[d+1]] }

// Search returns the top k passages for query. A query term repeated n times
// weighs n times, as in Anserini's bag-of-words queries. Ties rank the earlier
// added passage first.
//
// Search prunes with MaxScore (Turtle & Flood; Lucene's and PISA's
// document-at-a-time form): query terms are ordered by the most they can add
// to a passage, and once the k-th best score exceeds the sum of the
// smallest bounds, those terms no longer nominate candidates: they are only
// looked up for passages the others found, and a passage is dropped as soon
// as its partial score plus the remaining bounds cannot beat the k-th. The
// k-th best score starts from a floor known before any passage is scored
// (the best of the query terms' k-th largest contributions, kept per term
// for k = 1, 10, 100, 1000), so pruning starts with the first passages.
// Every passage adds its terms' float32 contributions in the same order as
// exhaustive scoring (bound descending), so scores, ranks and ties equal
// searchExhaustive's bit for bit (bounds carry a 1e-5 relative margin
// against rounding). Cost: the postings of the terms that still nominate
// candidates, plus a look-up per candidate in the others; at worst (k
// beyond the matching passages) one pass over the query terms' postings, as
// exhaustive scoring. Queries whose terms have fewer than 65,536 postings in
// all are scored exhaustively (as fast there).
func (ix *BM25) Search(ctx context.Context, query string, k int) ([]Hit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if k <= 0 {
		return nil, fmt.Errorf("bm25 search: k must be positive, got %d", k)
	}
	s := ix.scratch.Get().(*searchScratch)
	defer ix.scratch.Put(s)
	ix.queryTerms(s, query)
	postings := 0
	for _, q := range s.qt {
		postings += len(q.docs)
	}
	if len(s.qt) > maxPrunedTerms || (postings < minPrunedPostings && ix.n <= maxExhaustivePassages) {
		return ix.exhaustive(s, k), nil
	}
	return ix.maxScore(s, k), nil
}

// searchExhaustive scores every posting of every query term (term at a
// time); it is the reference Search's pruning must equal.
func (ix *BM25) searchExhaustive(query string, k int) []Hit {
	s := ix.scratch.Get().(*searchScratch)
	defer ix.scratch.Put(s)
	ix.queryTerms(s, query)
	return ix.exhaustive(s, k)
}

// minPrunedPostings is where pruning starts to pay in a corpus of at most
// maxExhaustivePassages: below it (SciFact's 5k passages, whose
// accumulators stay in L1 and L2) scoring every posting is a little faster
// than MaxScore's bookkeeping (3 %). In a larger corpus MaxScore is faster
// whatever the query: measured on the Zipf corpus, with the small queries
// pruned against scored exhaustively, 36 against 40 µs a query on average
// at 20k passages, 55 against 72 at 50k, 74 against 124 at 100k, 344–352
// against 368–396 at 1M (BENCHMARKS.md, "Fourth pass").
const (
	minPrunedPostings     = 1 << 16
	maxExhaustivePassages = 1 << 14
)

// maxPrunedTerms is the most distinct query terms MaxScore handles (one bit
// each in a uint64); longer queries are scored exhaustively.
const maxPrunedTerms = 64

// queryTerm is one distinct indexed query term and its cursor into its
// postings.
type queryTerm struct {
	ord  int // position in sorted order of the terms
	term uint32
	w    float32 // boost · idf
	ub   float64 // the most it adds to one passage
	docs []uint32
	inv  []float32
	pos  int
	doc  uint32        // docs[pos], or noDoc when exhausted
	tb   *termBits     // nil unless a frequent term
	wmin []float32     // nil, or the term's smallest inv per window (buildWindowBounds)
	c1   *[256]float32 // with tb, once non-essential: per norm, what a tf-1 posting adds
	// How maxScore finds a survivor's posting of this non-essential term
	// in the current window: see the look* constants.
	look uint8
	slot int // lookScattered: its windowScratch.wb and wpre
	p0   int // lookScattered: its first posting in the window
}

// How maxScore looks a non-essential term up for a window's survivors.
const (
	lookNone      = iota // no posting in the window
	lookBits             // a frequent term: its termBits
	lookScattered        // its window's postings scattered into a bitmap first
	lookCursor           // its cursor, advanced (survivors in passage order)
)

const noDoc = math.MaxUint32

// contribution is what a term of weight w adds to a passage whose posting
// keeps inv. The explicit conversion forbids a fused multiply-add, so every
// platform and both search paths round alike.
func contribution(w, inv float32) float32 { return w - float32(w*inv) }

// queryTerms analyses query into s.qt: its distinct indexed terms in sorted
// order, each weighted by its count.
func (ix *BM25) queryTerms(s *searchScratch, query string) {
	s.terms = ix.an.Analyze(s.terms[:0], query)
	slices.Sort(s.terms)
	s.qt = s.qt[:0]
	n := float64(ix.n)
	for i := 0; i < len(s.terms); {
		j := i + 1
		for j < len(s.terms) && s.terms[j] == s.terms[i] {
			j++
		}
		t, ok := ix.term(s.terms[i])
		boost := float32(j - i)
		i = j
		if !ok {
			continue
		}
		lo, hi := ix.start[t], ix.start[t+1]
		df := float64(hi - lo)
		w := boost * float32(math.Log(1+(n-df+0.5)/(df+0.5)))
		q := queryTerm{ord: len(s.qt), term: t, w: w, docs: ix.docs[lo:hi], inv: ix.inv[lo:hi],
			ub: float64(w) * (1 - float64(ix.rankInv[4*t])), tb: ix.denseOf(t), wmin: ix.windowBoundsOf(t)}
		q.doc = noDoc
		if len(q.docs) > 0 {
			q.doc = q.docs[0]
		}
		s.qt = append(s.qt, q)
	}
}

// order puts s.qt's terms into s.cur by bound ascending (equal bounds: the
// earlier query term first) and fills s.cum, the running sums of the bounds
// (with boundMargin). A passage's score adds its terms' contributions from
// the end of s.cur to its start (bound descending) in float32, on both
// search paths, so they round alike.
func (ix *BM25) order(s *searchScratch) {
	s.cur = s.cur[:0]
	for i := range s.qt {
		s.cur = append(s.cur, &s.qt[i])
	}
	slices.SortFunc(s.cur, func(a, b *queryTerm) int {
		if a.ub != b.ub {
			if a.ub < b.ub {
				return -1
			}
			return 1
		}
		return a.ord - b.ord
	})
	s.cum = s.cum[:0]
	total := 0.0
	for _, q := range s.cur {
		total += q.ub
		s.cum = append(s.cum, total*boundMargin)
	}
}

// exhaustive is term-at-a-time scoring of every posting of s.qt, terms by
// bound descending.
func (ix *BM25) exhaustive(s *searchScratch, k int) []Hit {
	ix.order(s)
	for i := len(s.cur) - 1; i >= 0; i-- {
		q := s.cur[i]
		w := q.w
		for p, d := range q.docs {
			if s.acc[d] == 0 {
				s.touched = append(s.touched, d)
			}
			s.acc[d] += contribution(w, q.inv[p])
		}
	}
	s.h = s.h[:0]
	for _, d := range s.touched {
		e := scored{doc: d, score: s.acc[d]}
		s.acc[d] = 0
		if len(s.h) < k {
			s.h.push(e)
		} else if better(e, s.h[0]) {
			s.h[0] = e
			s.h.down(0)
		}
	}
	s.touched = s.touched[:0]
	return ix.hits(s)
}

// hits empties the heap into hits, best first: sorted in place first, so
// the passage ids' look-ups (a cache miss or two each) are independent of
// one another and overlap.
func (ix *BM25) hits(s *searchScratch) []Hit {
	all := s.h
	for len(s.h) > 0 {
		n := len(s.h)
		all[n-1] = s.h.pop() // the worst left goes last
	}
	hits := make([]Hit, len(all))
	for i, e := range all {
		hits[i] = Hit{DocID: ix.id(e.doc), Rank: i + 1, Score: e.score}
	}
	return hits
}

// boundMargin inflates upper bounds so float32 rounding (at most 64 terms,
// 2⁻²⁴ each) can never make a pruned passage's exact score beat them.
const boundMargin = 1 + 1e-5

// maxWindow is how many consecutive passages maxScore scores at a time: the
// window's accumulators (4 bytes a passage) and its bitmap of passages found
// stay in L1 while the essential terms' postings are added term at a time.
const maxWindow = 1 << 12

// maxScore is MaxScore over s.qt in the bulk form of Lucene's
// MaxScoreBulkScorer (see Search): passages go in windows of maxWindow; in
// each, the essential terms (those whose bound, added to the smaller ones',
// could beat the k-th score) are added term at a time, bound descending,
// into the window's float32 accumulators. A candidate filter then drops the
// passages they found whose partial score, with the bounds of the
// non-essential terms they may hold, cannot beat the k-th: it reads one bit
// per candidate for each of the maxBitTerms non-essential terms with the
// largest bounds (a frequent term's termBits, or the term's postings in the
// window scattered into a bitmap when they are not many more than the
// candidates), and counts the others with their bound (a term with no
// posting in the window with none). The survivors, in passage order, take
// the non-essential terms from the largest bound down while their partial
// score plus the remaining bounds can still beat the k-th. Every passage's
// terms are so added in exhaustive's order (bound descending, a missing term
// adding nothing), so the accumulator that reaches the end is the exact
// score. Before any passage is scored, the k-th score is known to be at
// least the best of the query terms' k-th largest contributions (kept per
// term for k = 1, 10, 100, 1000), so the smallest terms are non-essential
// from the first window on.
func (ix *BM25) maxScore(s *searchScratch, k int) []Hit {
	s.h = s.h[:0]
	n := len(s.qt)
	if n == 0 {
		return nil
	}
	ix.order(s)
	if s.win == nil {
		s.win = new(windowScratch)
	}
	ws := s.win
	cur, cum := s.cur, s.cum
	wacc, cand := &ws.acc, &ws.cand
	// theta is a floor of the k-th best score: before any passage is
	// scored, the best of the query terms' k-th largest contributions (at
	// least k passages score that much or more), then the k-th best held.
	theta := math.Inf(-1)
	if ri := slices.IndexFunc(boundRanks[:], func(r int) bool { return r >= k }); ri >= 0 {
		for _, q := range s.qt {
			theta = max(theta, float64(contribution(q.w, ix.rankInv[4*int(q.term)+ri])))
		}
	}
	essential := 0 // cur[:essential] only confirm candidates
	for essential < n && cum[essential] <= theta {
		essential++
	}
	ndocs := uint32(ix.n)
	if len(s.c1) < n {
		s.c1 = make([][256]float32, n)
	}
	if cap(s.cumw) < n {
		s.cumw, s.ubw = make([]float64, n), make([]float64, n)
	}
	cumw, ubw := s.cumw[:n], s.ubw[:n]
	for lo := uint32(0); lo < ndocs; lo += maxWindow {
		hi := lo + maxWindow
		// Past the passages no essential term holds.
		any := false
		for _, q := range cur[essential:] {
			if q.doc < lo {
				q.advance(lo)
			}
			any = any || q.doc < hi
		}
		if !any {
			next := uint32(noDoc)
			for _, q := range cur[essential:] {
				next = min(next, q.doc)
			}
			if next == noDoc {
				break
			}
			lo = next / maxWindow * maxWindow
			lo -= maxWindow // the loop adds it back
			continue
		}
		// The window's bounds: a term with window bounds adds at most its
		// bound in this window. The terms essential here are those whose
		// window bound, added to the smaller ones', could beat the k-th:
		// the others only confirm candidates, as non-essential terms.
		win := lo / maxWindow
		total := 0.0
		for i, q := range cur {
			ub := q.ub
			if q.wmin != nil {
				ub = float64(q.w) * (1 - float64(q.wmin[win]))
			}
			total += ub
			ubw[i], cumw[i] = ub, total*boundMargin
		}
		essW := essential
		for essW < n && cumw[essW] <= theta {
			essW++
		}
		if essW == n {
			continue // no passage of the window can beat the k-th
		}
		// Where each non-essential term that is no frequent term stands: a
		// term with no posting in the window adds nothing to its passages.
		for _, q := range cur[:essW] {
			q.look = lookBits
			if q.tb != nil {
				continue
			}
			if q.doc < lo {
				q.advance(lo)
			}
			q.look = lookCursor
			if q.doc >= hi {
				q.look = lookNone
			}
		}
		// The essential terms, term at a time, bound descending, into the
		// window's accumulators.
		nc := 0
		for i := n - 1; i >= essW; i-- {
			if q := cur[i]; q.doc < hi {
				nc = addPostings(q, lo, hi, wacc, cand, nc)
			}
		}
		theta = ix.postingWindow(s, lo, hi, essW, nc, theta, k)
		for essential < n && cum[essential] <= theta {
			essential++
		}
		if essential == n {
			break // no passage can beat the k-th any more
		}
	}
	return ix.hits(s)
}

// addPostings adds q's postings in [lo, hi) into the window's accumulators
// and lists in cand, from cand[nc] on, the passages found for the first
// time; it returns the new count and leaves q's cursor at hi.
func addPostings(q *queryTerm, lo, hi uint32, wacc *[maxWindow]float32, cand *[maxWindow + 1]uint16, nc int) int {
	w, docs := q.w, q.docs
	inv := q.inv[:len(docs)]
	p := q.pos
	for ; p < len(docs) && docs[p] < hi; p++ {
		d := (docs[p] - lo) & (maxWindow - 1)
		old := wacc[d]
		wacc[d] = old + contribution(w, inv[p])
		cand[nc] = uint16(d) // nc ≤ maxWindow: each passage counts once
		found := 0           // a contribution is never 0: an untouched accumulator is
		if math.Float32bits(old) == 0 {
			found = 1
		}
		nc += found
	}
	q.pos = p
	q.doc = noDoc
	if p < len(docs) {
		q.doc = docs[p]
	}
	return nc
}

// c1Of fills, once a search, a frequent term's table of what a tf-1
// posting adds per norm.
func (ix *BM25) c1Of(s *searchScratch, q *queryTerm) {
	if q.c1 == nil {
		q.c1 = s.c1For(q.ord)
		for i, inv := range &ix.tf1Inv {
			q.c1[i] = contribution(q.w, inv)
		}
	}
}

// postingWindow filters and scores the window's candidates (cand[:nc], their
// essential terms' partial scores in the accumulators) and returns the new
// floor of the k-th score. The filter reads one bit per candidate for each
// of the maxBitTerms non-essential terms with the largest bounds: a
// frequent term's termBits, or the term's postings in the window scattered
// into a bitmap when they are not many more than the candidates; the other
// non-essential terms count with their bound.
func (ix *BM25) postingWindow(s *searchScratch, lo, hi uint32, essential, nc int, theta float64, k int) float64 {
	ws := s.win
	wacc, cand, surv := &ws.acc, &ws.cand, &ws.surv
	ne := s.cur[:essential]
	cum, ubw := s.cumw, s.ubw
	always := 0.0 // the bounds of the terms the filter has no bit for
	fb := ws.fb[:0]
	scattered := 0
	for i := essential - 1; i >= 0; i-- {
		q := ne[i]
		switch q.look {
		case lookBits:
			ix.c1Of(s, q)
			if len(fb) < maxBitTerms {
				fb = append(fb, filterTerm{ub: ubw[i], words: (*[maxWindow / 64]uint64)(q.tb.has[lo>>6:])})
			} else {
				always += ubw[i]
			}
		case lookCursor:
			p1 := q.pos + seek(q.docs[q.pos:], hi)
			if len(fb) == maxBitTerms || p1-q.pos > 2*nc {
				always += ubw[i]
				continue
			}
			// Scattered: the filter reads its bit, a survivor finds its
			// posting by rank. Cost: one write a posting.
			b, pre := &ws.wb[scattered], &ws.wpre[scattered]
			for _, d := range q.docs[q.pos:p1] {
				b[(d>>6)&(maxWindow/64-1)] |= 1 << (d & 63)
			}
			c := uint16(0)
			for x, word := range b {
				pre[x] = c
				c += uint16(bits.OnesCount64(word))
			}
			q.look, q.slot, q.p0 = lookScattered, scattered, q.pos
			fb = append(fb, filterTerm{ub: ubw[i], words: b})
			scattered++
			q.pos = p1
			q.doc = noDoc
			if p1 < len(q.docs) {
				q.doc = q.docs[p1]
			}
		}
	}
	ws.fb = fb
	if base := theta/boundMargin - always; !ws.limFor(base, fb) {
		candidateLimits(&ws.lim, fb, base)
	}
	lim := &ws.lim
	var fw [maxBitTerms]*[maxWindow / 64]uint64
	for i := range fw {
		fw[i] = &ws.zero
		if i < len(fb) {
			fw[i] = fb[i].words
		}
	}
	// A candidate's bits of the filter terms pick its limit; one that passes
	// keeps its accumulator and a bit in surv, the others are cleared. No
	// branch to mispredict.
	f0, f1, f2, f3 := fw[0], fw[1], fw[2], fw[3]
	for _, d := range cand[:nc] {
		d &= maxWindow - 1
		x, j := d>>6, uint(d&63)
		sc := wacc[d]
		idx := (f0[x]>>j)&1 | (f1[x]>>j)&1<<1 | (f2[x]>>j)&1<<2 | (f3[x]>>j)&1<<3
		keep := uint64(0)
		if sc > lim[idx] {
			keep = 1
		}
		surv[x] |= keep << j
		wacc[d] = sc * float32(keep) // exactly sc, or 0
	}
	// The survivors, in passage order, take the non-essential terms,
	// largest bound first, while they can still beat the k-th.
	for x := range surv {
		word := surv[x]
		if word == 0 {
			continue
		}
		surv[x] = 0
		for ; word != 0; word &= word - 1 {
			d := uint32(x<<6) | uint32(bits.TrailingZeros64(word))
			sc := wacc[d]
			wacc[d] = 0
			sc, ok := ix.addTerms(s, lo, lo+d, sc, essential-1, theta, cum)
			if ok {
				theta = offer(s, lo+d, sc, theta, k)
			}
		}
	}
	for i := range scattered {
		ws.wb[i] = [maxWindow / 64]uint64{}
	}
	return theta
}

// addTerms adds to sc, passage doc's partial score, the contributions of
// s.cur[i] down to s.cur[0] (bound descending), each looked up as its look
// says, and reports whether the passage can still beat theta: false as
// soon as its partial score plus the remaining bounds cannot.
func (ix *BM25) addTerms(s *searchScratch, lo, doc uint32, sc float32, i int, theta float64, cum []float64) (float32, bool) {
	gw, gj := doc>>6, doc&63
	norm := ix.norms[doc]
	for ; i >= 0; i-- {
		if float64(sc)+cum[i] <= theta {
			return sc, false
		}
		q := s.cur[i]
		switch q.look {
		case lookBits:
			tb := q.tb
			has, one := tb.has[gw], tb.one[gw]
			v := q.c1[norm] * float32((one>>gj)&1) // 0 or exactly the contribution
			if ((has&^one)>>gj)&1 != 0 {
				v = contribution(q.w, q.inv[tb.pos(doc)])
			}
			sc += v
		case lookScattered:
			x, j := (doc-lo)>>6&(maxWindow/64-1), (doc-lo)&63
			b := s.win.wb[q.slot][x]
			if (b>>j)&1 != 0 {
				p := q.p0 + int(s.win.wpre[q.slot][x]) + bits.OnesCount64(b&(1<<j-1))
				sc += contribution(q.w, q.inv[p])
			}
		case lookCursor:
			if q.doc < doc {
				q.advance(doc)
			}
			if q.doc == doc {
				sc += contribution(q.w, q.inv[q.pos])
			}
		}
	}
	return sc, true
}

// offer puts passage doc, of score sc, among the best k if it belongs
// there, and returns the new floor of the k-th score.
func offer(s *searchScratch, doc uint32, sc float32, theta float64, k int) float64 {
	e := scored{doc: doc, score: sc}
	if len(s.h) < k {
		s.h.push(e)
	} else if better(e, s.h[0]) {
		s.h[0] = e
		s.h.down(0)
	} else {
		return theta
	}
	if len(s.h) == k {
		theta = max(theta, float64(s.h[0].score))
	}
	return theta
}

// seek is the index of the first of docs (ascending) at or after target, or
// len(docs): the first eight looked at in turn (a cursor's next candidate is
// usually a few postings on), then galloping and binary search.
func seek(docs []uint32, target uint32) int {
	end := min(8, len(docs))
	for p := range end {
		if docs[p] >= target {
			return p
		}
	}
	if end == len(docs) {
		return end
	}
	// docs[lo] < target
	lo, step := end-1, 1
	hi := lo + step
	for hi < len(docs) && docs[hi] < target {
		lo = hi
		step <<= 1
		hi = lo + step
	}
	hi = min(hi, len(docs))
	for lo++; lo < hi; {
		m := int(uint(lo+hi) >> 1)
		if docs[m] < target {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// advance moves the cursor to its first posting at or after target, which
// is past its current one.
func (q *queryTerm) advance(target uint32) {
	q.pos += 1 + seek(q.docs[q.pos+1:], target)
	q.doc = noDoc
	if q.pos < len(q.docs) {
		q.doc = q.docs[q.pos]
	}
}

type scored struct {
	doc   uint32
	score float32
}

// better orders by score descending, then passage number ascending.
func better(a, b scored) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.doc < b.doc
}

// hitHeap is a min-heap of the current top k (worst on top); see push, pop
// and down in dense.go.
type hitHeap []scored

// Lucene's SmallFloat.intToByte4 / byte4ToInt: document lengths in one byte,
// exact up to 23 and lossy (4 significant bits) above.
const numFreeValues = 255 - 231 // 255 - longToInt4(MaxInt32)

func longToInt4(i uint64) int {
	nb := 64 - bits.LeadingZeros64(i)
	if nb < 4 {
		return int(i)
	}
	shift := nb - 4
	encoded := int(i>>uint(shift)) & 0x07
	return encoded | ((shift + 1) << 3)
}

func int4ToLong(i int) uint64 {
	b := uint64(i & 0x07)
	shift := (i >> 3) - 1
	if shift == -1 {
		return b
	}
	return (b | 0x08) << uint(shift)
}

func intToByte4(i int) uint8 {
	if i < numFreeValues {
		return uint8(i)
	}
	return uint8(numFreeValues + longToInt4(uint64(i-numFreeValues)))
}

func byte4ToInt(b uint8) int {
	i := int(b)
	if i < numFreeValues {
		return i
	}
	return numFreeValues + int(int4ToLong(i-numFreeValues))
}

// toLowerASCIIFast lowercases s, skipping the allocation when s is already
// lower-case ASCII.
func toLowerASCIIFast(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || ('A' <= c && c <= 'Z') {
			return lowerSlow(s)
		}
	}
	return s
}
