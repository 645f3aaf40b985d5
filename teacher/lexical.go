package teacher

import (
	"context"
	"iter"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Lexical is the offline teacher: a deterministic score from word overlap,
// 8·(share of the query's distinct words found in the passage) + 4·(share of
// its word bigrams found) − 6, in [−6, 6]. It needs no server and is meant
// for trying the flow and for smoke tests, not for training a real model.
type Lexical struct{}

// ScoreKind reports "lexical".
func (Lexical) ScoreKind() string { return "lexical" }

// Score scores each passage against query (stages.Scorer). Cost: linear in
// the query and passage lengths, with one lower-cased copy of each passage
// and no other allocation per passage (a passage's words are only looked up
// among the query's, never collected).
func (Lexical) Score(ctx context.Context, query string, passages []string) ([]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The query's distinct words and distinct bigrams, numbered. Words hold
	// no separator, so a pair of word numbers names a bigram exactly.
	type pair struct{ a, b int }
	uni := map[string]int{}
	bi := map[pair]int{}
	prev := -1
	for w := range lexWordSeq(query) {
		id, ok := uni[w]
		if !ok {
			id = len(uni)
			uni[w] = id
		}
		if prev >= 0 {
			if _, ok := bi[pair{prev, id}]; !ok {
				bi[pair{prev, id}] = len(bi)
			}
		}
		prev = id
	}
	seenU, seenB := make([]bool, len(uni)), make([]bool, len(bi))
	out := make([]float32, len(passages))
	for i, p := range passages {
		clear(seenU)
		clear(seenB)
		nu, nb := 0, 0
		prev := -1
		for w := range passageWords(p) {
			id, ok := uni[string(w)]
			if !ok {
				prev = -1
				continue
			}
			if !seenU[id] {
				seenU[id] = true
				nu++
			}
			if prev >= 0 {
				if b, ok := bi[pair{prev, id}]; ok && !seenB[b] {
					seenB[b] = true
					nb++
				}
			}
			prev = id
		}
		var s float32 = -6
		if len(uni) > 0 {
			s += 8 * float32(nu) / float32(len(uni))
		}
		if len(bi) > 0 {
			s += 4 * float32(nb) / float32(len(bi))
		}
		out[i] = s
	}
	return out, nil
}

// lexWordSeq yields the words of s lower-cased: the runs of letters and
// digits, as strings.FieldsFunc splits them.
func lexWordSeq(s string) iter.Seq[string] {
	return strings.FieldsFuncSeq(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
}

// passageWords yields the words of s lower-cased, as lexWordSeq does, as
// byte slices valid until the next word. ASCII text (most corpora) is split
// and lower-cased in one pass with no allocation; other text goes through
// lexWordSeq.
func passageWords(s string) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				for w := range lexWordSeq(s) {
					if !yield([]byte(w)) {
						return
					}
				}
				return
			}
		}
		var buf [64]byte
		w := buf[:0]
		for i := 0; i <= len(s); i++ {
			var c byte
			if i < len(s) {
				c = s[i]
			}
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
				w = append(w, c)
				continue
			case 'A' <= c && c <= 'Z':
				w = append(w, c+'a'-'A')
				continue
			}
			if len(w) > 0 {
				if !yield(w) {
					return
				}
				w = buf[:0]
			}
		}
	}
}
