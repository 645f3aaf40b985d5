package retriever

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// assertPrunedEqualsExhaustive checks that MaxScore returns the same hits
// (ids, ranks and float32 scores bit for bit, ties included) as scoring every
// posting, for each query and each k.
func assertPrunedEqualsExhaustive(t *testing.T, ix *BM25, queries []string, ks []int) {
	t.Helper()
	ctx := context.Background()
	s := ix.scratch.Get().(*searchScratch)
	defer ix.scratch.Put(s)
	bad := 0
	for _, q := range queries {
		for _, k := range ks {
			if err := ctx.Err(); err != nil {
				t.Fatal(err)
			}
			ix.queryTerms(s, q) // MaxScore itself, whatever the query's size
			got := ix.maxScore(s, k)
			want := ix.searchExhaustive(q, k)
			if len(want) == 0 {
				want = nil
			}
			if len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, want) {
				bad++
				if bad <= 3 {
					t.Errorf("query %q k=%d: pruned %d hits differ from exhaustive %d", q, k, len(got), len(want))
					for i := range min(len(got), len(want)) {
						if got[i] != want[i] {
							t.Errorf("  first difference at rank %d: pruned %+v, exhaustive %+v", i+1, got[i], want[i])
							break
						}
					}
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d searches differ", bad, len(queries)*len(ks))
	}
}

func TestMaxScoreEqualsExhaustiveSynthetic(t *testing.T) {
	ids, texts, queries := zipfCorpus(20_000)
	// Exact copies make equal scores, so ties are exercised.
	for i := 0; i < 2000; i++ {
		texts[i*7] = texts[i*7+3]
	}
	b := NewBM25Builder(nil, nil)
	b.AddBatch(ids, texts, 0)
	ix := b.Build()
	queries = append(queries, "", "the of and", texts[3], texts[100][:40])
	assertPrunedEqualsExhaustive(t, ix, queries[:400], []int{1, 10, 100, 1000})
}

func TestMaxScoreEqualsExhaustiveSciFact(t *testing.T) {
	dir := sciFactDir(t)
	ix := buildSciFact(t, dir)
	var qs []string
	for _, q := range readJSONL[beirDoc](t, filepath.Join(dir, "queries.jsonl")) {
		qs = append(qs, q.Text)
	}
	assertPrunedEqualsExhaustive(t, ix, qs, []int{10, 100, 1000})
}

// TestMaxScoreEqualsExhaustiveUniform: passages of ten distinct words each,
// so every passage has the same length and every posting of a term adds
// exactly the term's bound. Scores then sit on the bounds themselves and tie
// in crowds, so a bound, limit or early exit that is short by any amount
// drops a passage that belongs in the top k (a 2 % error passed the Zipf
// and SciFact corpora, whose bounds few passages reach).
func TestMaxScoreEqualsExhaustiveUniform(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	z := rand.NewZipf(r, 1.05, 4, 399)
	word := func(i uint64) string { return fmt.Sprintf("w%03d", i) }
	b := NewBM25Builder(nil, nil)
	for i := 0; i < 20_000; i++ {
		seen := map[uint64]bool{}
		var ws []string
		for len(ws) < 10 {
			if w := z.Uint64(); !seen[w] {
				seen[w] = true
				ws = append(ws, word(w))
			}
		}
		b.Add(fmt.Sprintf("u%05d", i), strings.Join(ws, " "))
	}
	ix := b.Build()
	if len(ix.dense) < 5 || len(ix.dense) > ix.Terms()-20 {
		t.Fatalf("%d of %d terms frequent: want some of both", len(ix.dense), ix.Terms())
	}
	var queries []string
	for i := 0; i < 400; i++ {
		var ws []string
		for j := 2 + r.IntN(7); j > 0; j-- {
			ws = append(ws, word(z.Uint64()))
		}
		queries = append(queries, strings.Join(ws, " "))
	}
	assertPrunedEqualsExhaustive(t, ix, queries, []int{1, 10, 100, 1000})
}

// TestMaxScoreTies: passages with identical scores rank by insertion order
// whichever part of the list pruning skipped.
func TestMaxScoreTies(t *testing.T) {
	b := NewBM25Builder(nil, nil)
	ids := []string{}
	for i := 0; i < 500; i++ {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26))
		ids = append(ids, id)
		switch i % 3 {
		case 0:
			b.Add(id, "alpha beta gamma")
		case 1:
			b.Add(id, "alpha delta epsilon")
		default:
			b.Add(id, "zeta eta theta")
		}
	}
	ix := b.Build()
	for _, q := range []string{"alpha beta", "alpha", "beta gamma delta", "alpha zeta"} {
		assertPrunedEqualsExhaustive(t, ix, []string{q}, []int{1, 5, 50, 400})
	}
	hits, _ := ix.Search(context.Background(), "alpha beta", 3)
	if hits[0].DocID != ids[0] || hits[1].DocID != ids[3] || hits[2].DocID != ids[6] {
		t.Errorf("ties: got %v, want the earliest passages with both terms", hits)
	}
}

// TestTermBits checks the frequent terms' bitmaps against their postings:
// a passage's has-bit is set exactly when the term's postings hold it,
// its tf-1 bit only when the posting's inv is the tf-1 inv of the
// passage's norm bit for bit (what MaxScore adds in its place), and pos
// finds the posting. The corpus repeats words, so tf above 1 occurs.
func TestTermBits(t *testing.T) {
	ids, texts, _ := zipfCorpus(5000)
	for i := 0; i < 500; i++ {
		texts[i*3] += " " + texts[i*3][:30] // repeated words: tf 2 and more
	}
	b := NewBM25Builder(nil, nil)
	b.AddBatch(ids, texts, 0)
	ix := b.Build()
	if len(ix.dense) < 20 {
		t.Fatalf("%d frequent terms, want at least 20 for the test to mean something", len(ix.dense))
	}
	ones, others := 0, 0
	for i, term := range ix.denseIDs {
		tb := &ix.dense[i]
		lo, hi := ix.start[term], ix.start[term+1]
		if hi-lo < uint64(ix.n/minDenseDiv) {
			t.Fatalf("term %d has %d postings, below n/%d", term, hi-lo, minDenseDiv)
		}
		p := lo
		for d := uint32(0); d < uint32(ix.n); d++ {
			has := tb.has[d>>6]>>(d&63)&1 != 0
			one := tb.one[d>>6]>>(d&63)&1 != 0
			held := p < hi && ix.docs[p] == d
			if has != held || (one && !has) {
				t.Fatalf("term %d passage %d: has %v one %v, postings say %v", term, d, has, one, held)
			}
			if !held {
				continue
			}
			if got := uint64(tb.pos(d)); got != p-lo {
				t.Fatalf("term %d passage %d: pos %d, want %d", term, d, got, p-lo)
			}
			if one {
				ones++
				if ix.inv[p] != ix.tf1Inv[ix.norms[d]] {
					t.Fatalf("term %d passage %d: tf-1 bit set, inv %v, tf-1 inv %v", term, d, ix.inv[p], ix.tf1Inv[ix.norms[d]])
				}
			} else {
				others++
			}
			p++
		}
	}
	if ones == 0 || others == 0 {
		t.Errorf("%d tf-1 postings and %d others: the test needs both", ones, others)
	}
}
