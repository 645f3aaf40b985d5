package retriever

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sync"
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
// be used afterwards. Cost: two passes over the postings.
func (b *BM25Builder) Build() *BM25 {
	nTerms := len(b.dict)
	start := make([]int, nTerms+1) // int, not uint32: an index past 2³² postings must not wrap
	for _, t := range b.docTerms {
		start[t+1]++
	}
	for i := 1; i <= nTerms; i++ {
		start[i] += start[i-1]
	}
	n := len(b.ids)
	avgdl := float32(1)
	if n > 0 {
		avgdl = float32(float64(b.sumLen) / float64(n))
	}
	// Lucene's per-norm cache: 1 / (k1 · (1 - b + b · dl / avgdl)).
	var normInv [256]float32
	for i := range normInv {
		normInv[i] = 1 / (b.params.K1 * ((1 - b.params.B) + b.params.B*float32(byte4ToInt(uint8(i)))/avgdl))
	}
	// Each posting keeps 1 / (1 + tf · normInv[norm]), so a query term adds
	// w - w·inv: no division and no norm lookup at search time.
	docs := make([]uint32, len(b.docTerms))
	inv := make([]float32, len(b.docTerms))
	fill := slices.Clone(start[:nTerms])
	for d := 0; d+1 < len(b.docStart); d++ {
		ni := normInv[b.norms[d]]
		for p := b.docStart[d]; p < b.docStart[d+1]; p++ {
			t := b.docTerms[p]
			docs[fill[t]] = uint32(d)
			inv[fill[t]] = 1 / (1 + float32(b.docTF[p])*ni)
			fill[t]++
		}
	}
	ix := &BM25{
		an: b.an, params: b.params, ids: b.ids, dict: b.dict,
		start: start, docs: docs, inv: inv, avgdl: avgdl,
	}
	ix.scratch.New = func() any { return &searchScratch{acc: make([]float32, n)} }
	*b = BM25Builder{}
	return ix
}

// BM25 is an in-memory inverted index scored as Lucene's BM25Similarity:
// idf = ln(1 + (N - df + 0.5)/(df + 0.5)), document lengths stored with
// Lucene's lossy one-byte norm encoding. Search is safe for concurrent use.
type BM25 struct {
	an      *Analyzer
	params  BM25Params
	ids     []string
	dict    map[string]uint32
	start   []int // per term: its postings are docs[start[t]:start[t+1]]
	docs    []uint32
	inv     []float32 // per posting: 1 / (1 + tf · normInv[norm of its passage])
	avgdl   float32
	scratch sync.Pool
}

type searchScratch struct {
	acc     []float32
	touched []uint32
	terms   []string
	h       hitHeap
}

// Len is the number of indexed passages.
func (ix *BM25) Len() int { return len(ix.ids) }

// Postings is the number of (term, passage) entries; each costs 8 bytes
// (passage number and precomputed length-normalised tf).
func (ix *BM25) Postings() int { return len(ix.docs) }

// Terms is the vocabulary size.
func (ix *BM25) Terms() int { return len(ix.dict) }

// Search returns the top k passages for query. A query term repeated n times
// weighs n times, as in Anserini's bag-of-words queries. Ties rank the earlier
// added passage first. Cost: one pass over the postings of the query's terms.
func (ix *BM25) Search(ctx context.Context, query string, k int) ([]Hit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if k <= 0 {
		return nil, fmt.Errorf("bm25 search: k must be positive, got %d", k)
	}
	s := ix.scratch.Get().(*searchScratch)
	defer ix.scratch.Put(s)
	s.terms = ix.an.Analyze(s.terms[:0], query)
	slices.Sort(s.terms)
	n := float64(len(ix.ids))
	for i := 0; i < len(s.terms); {
		j := i + 1
		for j < len(s.terms) && s.terms[j] == s.terms[i] {
			j++
		}
		t, ok := ix.dict[s.terms[i]]
		boost := float32(j - i)
		i = j
		if !ok {
			continue
		}
		lo, hi := ix.start[t], ix.start[t+1]
		df := float64(hi - lo)
		w := boost * float32(math.Log(1+(n-df+0.5)/(df+0.5)))
		for p := lo; p < hi; p++ {
			d := ix.docs[p]
			if s.acc[d] == 0 {
				s.touched = append(s.touched, d)
			}
			s.acc[d] += w - w*ix.inv[p]
		}
	}
	s.h = s.h[:0]
	for _, d := range s.touched {
		e := scored{doc: d, score: s.acc[d]}
		s.acc[d] = 0
		if len(s.h) < k {
			s.h.push(e)
		} else if e.score >= s.h[0].score && better(e, s.h[0]) {
			s.h[0] = e
			s.h.down(0)
		}
	}
	s.touched = s.touched[:0]
	hits := make([]Hit, len(s.h))
	for i := len(s.h) - 1; i >= 0; i-- {
		e := s.h.pop()
		hits[i] = Hit{DocID: ix.ids[e.doc], Rank: i + 1, Score: e.score}
	}
	return hits, nil
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
