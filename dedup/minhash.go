// Package dedup finds near-duplicate passages: MinHash signatures over word
// shingles, locality-sensitive hashing by bands to find candidate pairs, and
// a check of each candidate pair's estimated Jaccard similarity.
package dedup

import (
	"cmp"
	"math"
	"slices"
)

// Options configure near-duplicate detection. Zero fields take defaults.
type Options struct {
	Threshold float64 // Jaccard similarity at which two passages are duplicates (default 0.9)
	Shingle   int     // words per shingle (default 5)
	Hashes    int     // MinHash functions (default 128)
	Seed      uint64  // seeds the hash functions
}

func (o *Options) defaults() {
	if o.Threshold == 0 {
		o.Threshold = 0.9
	}
	if o.Shingle == 0 {
		o.Shingle = 5
	}
	if o.Hashes == 0 {
		o.Hashes = 128
	}
}

// Finder accumulates passages (as normalised word lists) and then resolves
// duplicates. It keeps 2 bytes per hash function per passage (256 bytes at
// the default 128) plus 8 bytes per band: about 300 MB for a million
// passages. Not safe for concurrent use.
type Finder struct {
	opts     Options
	rows     int // rows per band
	bands    int
	mul, add []uint64
	sigs     []uint16 // n × Hashes, 16-bit minima
	keys     []uint64 // n × bands
	scratch  []uint64
}

// NewFinder returns a Finder. The band width is the widest (fewest false
// candidates) whose chance of proposing a pair at exactly the threshold is
// still at least 99%.
func NewFinder(opts Options) *Finder {
	opts.defaults()
	f := &Finder{opts: opts}
	rows := 1
	for r := 1; r <= opts.Hashes; r *= 2 {
		b := opts.Hashes / r
		if 1-math.Pow(1-math.Pow(opts.Threshold, float64(r)), float64(b)) >= 0.99 {
			rows = r
		}
	}
	f.rows, f.bands = rows, opts.Hashes/rows
	s := opts.Seed ^ 0x9e3779b97f4a7c15
	next := func() uint64 { // splitmix64
		s += 0x9e3779b97f4a7c15
		z := s
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
	f.mul, f.add = make([]uint64, opts.Hashes), make([]uint64, opts.Hashes)
	for i := range f.mul {
		f.mul[i], f.add[i] = next()|1, next()
	}
	return f
}

// Bands is the number of LSH bands (rows per band = Hashes / Bands).
func (f *Finder) Bands() int { return f.bands }

// Len is the number of passages added.
func (f *Finder) Len() int { return len(f.keys) / f.bands }

// Add appends a passage given as its normalised words. Passages shorter
// than one shingle are one shingle. Cost: Hashes multiply-adds per shingle.
func (f *Finder) Add(words []string) {
	h := f.opts.Hashes
	mins := f.scratch[:0]
	for i := 0; i < h; i++ {
		mins = append(mins, math.MaxUint64)
	}
	f.scratch = mins
	k := f.opts.Shingle
	n := max(len(words)-k+1, 1)
	for s := 0; s < n; s++ {
		sh := shingleHash(words[s:min(s+k, len(words))])
		for i := 0; i < h; i++ {
			if v := sh*f.mul[i] + f.add[i]; v < mins[i] {
				mins[i] = v
			}
		}
	}
	for i := 0; i < h; i++ {
		f.sigs = append(f.sigs, uint16(mins[i]>>48))
	}
	for b := 0; b < f.bands; b++ {
		// FNV-1a over the band's full 64-bit minima.
		x := uint64(14695981039346656037)
		for _, m := range mins[b*f.rows : (b+1)*f.rows] {
			x ^= m
			x *= 1099511628211
		}
		f.keys = append(f.keys, x^uint64(b))
	}
}

func shingleHash(ws []string) uint64 {
	x := uint64(14695981039346656037)
	for _, w := range ws {
		for i := 0; i < len(w); i++ {
			x ^= uint64(w[i])
			x *= 1099511628211
		}
		x ^= ' '
		x *= 1099511628211
	}
	// finalise: FNV's low bits mix poorly and the hash is used as a multiplier input
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

// Similarity is the estimated Jaccard similarity of passages i and j: the
// share of equal 16-bit minima, corrected for chance 16-bit collisions.
func (f *Finder) Similarity(i, j int) float64 {
	h := f.opts.Hashes
	a, b := f.sigs[i*h:(i+1)*h], f.sigs[j*h:(j+1)*h]
	eq := 0
	for x := range a {
		if a[x] == b[x] {
			eq++
		}
	}
	const chance = 1.0 / 65536
	return max(0, (float64(eq)/float64(h)-chance)/(1-chance))
}

// Duplicates resolves the added passages in order: passage j is a duplicate
// of the earliest kept passage i < j that shares an LSH band with it and whose
// estimated similarity reaches the threshold; kept passages are never
// duplicates of each other. It returns, per passage, the index of the kept
// passage it duplicates, or -1. Cost: one sort per band of n keys plus a
// signature comparison per candidate pair.
func (f *Finder) Duplicates() []int {
	n := f.Len()
	type kv struct {
		key uint64
		idx int32
	}
	cands := make([][]int32, n) // j -> earlier candidates i
	col := make([]kv, n)
	for b := 0; b < f.bands; b++ {
		for i := 0; i < n; i++ {
			col[i] = kv{f.keys[i*f.bands+b], int32(i)}
		}
		slices.SortFunc(col, func(x, y kv) int {
			if c := cmp.Compare(x.key, y.key); c != 0 {
				return c
			}
			return cmp.Compare(x.idx, y.idx)
		})
		for lo := 0; lo < n; {
			hi := lo + 1
			for hi < n && col[hi].key == col[lo].key {
				hi++
			}
			// A bucket proposes every pair, up to a cap: each passage is
			// paired with the bucket's first 16 and its 64 predecessors,
			// so a degenerate bucket (thousands of copies of one
			// boilerplate passage) costs m·80 and not m², and copies
			// still meet the first, kept one.
			for x := lo + 1; x < hi; x++ {
				for y := lo; y < x; y++ {
					if y == lo+16 && x-64 > y {
						y = x - 64
					}
					cands[col[x].idx] = append(cands[col[x].idx], col[y].idx)
				}
			}
			lo = hi
		}
	}
	dup := make([]int, n)
	for j := 0; j < n; j++ {
		dup[j] = -1
		c := cands[j]
		slices.Sort(c)
		c = slices.Compact(c)
		for _, i := range c {
			if dup[i] == -1 && f.Similarity(int(i), j) >= f.opts.Threshold {
				dup[j] = int(i)
				break
			}
		}
		cands[j] = nil
	}
	return dup
}
