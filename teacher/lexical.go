package teacher

import (
	"context"
	"strings"
	"unicode"
)

// Lexical is the offline teacher: a deterministic score from word overlap,
// 8·(share of the query's distinct words found in the passage) + 4·(share of
// its word bigrams found) − 6, in [−6, 6]. It needs no server and is meant
// for trying the flow and for smoke tests, not for training a real model.
type Lexical struct{}

// ScoreKind reports "lexical".
func (Lexical) ScoreKind() string { return "lexical" }

// Score scores each passage against query (stages.Scorer). Cost: linear in the query and passage lengths.
func (Lexical) Score(ctx context.Context, query string, passages []string) ([]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	qw := lexWords(query)
	uni := map[string]bool{}
	for _, w := range qw {
		uni[w] = true
	}
	bi := map[string]bool{}
	for i := 1; i < len(qw); i++ {
		bi[qw[i-1]+" "+qw[i]] = true
	}
	out := make([]float32, len(passages))
	for i, p := range passages {
		pw := lexWords(p)
		pu := make(map[string]bool, len(pw))
		pb := make(map[string]bool, len(pw))
		for j, w := range pw {
			pu[w] = true
			if j > 0 {
				pb[pw[j-1]+" "+w] = true
			}
		}
		var s float32 = -6
		if len(uni) > 0 {
			n := 0
			for w := range uni {
				if pu[w] {
					n++
				}
			}
			s += 8 * float32(n) / float32(len(uni))
		}
		if len(bi) > 0 {
			n := 0
			for b := range bi {
				if pb[b] {
					n++
				}
			}
			s += 4 * float32(n) / float32(len(bi))
		}
		out[i] = s
	}
	return out, nil
}

func lexWords(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
}
