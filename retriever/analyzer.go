package retriever

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/clipperhouse/uax29/v2/words"
)

// englishStopwords is Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (33 words),
// the set Anserini's BEIR regressions use.
var englishStopwords = [...]string{
	"a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
	"is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then",
	"there", "these", "they", "this", "to", "was", "will", "with",
}

// maxTokenLength is Lucene StandardTokenizer's default: longer tokens are split
// into pieces of this many characters.
const maxTokenLength = 255

// Analyzer turns text into index terms the way Lucene's English chain does:
// Unicode word segmentation (UAX #29, as StandardTokenizer), possessive 's
// removal, lowercasing, Lucene's 33 English stopwords and the original Porter
// stemmer. An Analyzer is safe for concurrent use.
type Analyzer struct {
	stop map[string]struct{}
	stem bool
}

// NewEnglishAnalyzer returns the Lucene/Anserini English analyzer.
func NewEnglishAnalyzer() *Analyzer {
	stop := make(map[string]struct{}, len(englishStopwords))
	for _, w := range englishStopwords {
		stop[w] = struct{}{}
	}
	return &Analyzer{stop: stop, stem: true}
}

// Analyze appends the terms of text to dst and returns it. Cost: linear in the
// text, one allocation per kept term.
func (a *Analyzer) Analyze(dst []string, text string) []string {
	a.tokens(text, func(tok string) {
		tok = strings.ToLower(tok)
		if _, ok := a.stop[tok]; ok {
			return
		}
		if a.stem {
			tok = porterStem(tok)
		}
		dst = append(dst, tok)
	})
	return dst
}

// Tokens appends the lowercased surface tokens of text (segmentation,
// possessive removal and lowercasing, no stopwords or stemming) to dst.
func (a *Analyzer) Tokens(dst []string, text string) []string {
	a.tokens(text, func(tok string) { dst = append(dst, strings.ToLower(tok)) })
	return dst
}

// tokens segments text as StandardTokenizer does: word-boundary segments that
// hold a letter or digit become tokens (ideographs and other scripts each as
// UAX #29 splits them); punctuation and spaces are dropped.
func (a *Analyzer) tokens(text string, emit func(string)) {
	seg := words.FromString(text)
	for seg.Next() {
		tok := seg.Value()
		if !isWordToken(tok) {
			continue
		}
		tok = stripPossessive(tok)
		for utf8.RuneCountInString(tok) > maxTokenLength {
			cut := 0
			for i := 0; i < maxTokenLength; i++ {
				_, n := utf8.DecodeRuneInString(tok[cut:])
				cut += n
			}
			emit(tok[:cut])
			tok = tok[cut:]
		}
		if tok != "" {
			emit(tok)
		}
	}
}

func isWordToken(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') {
				return true
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unicode.IsLetter(r) || unicode.IsNumber(r) {
			return true
		}
		i += n
	}
	return false
}

// stripPossessive removes a trailing 's (with ', U+2019 or U+FF07), as
// Lucene's EnglishPossessiveFilter does.
func stripPossessive(s string) string {
	for _, suf := range [...]string{"'s", "'S", "\u2019s", "\u2019S", "\uff07s", "\uff07S"} {
		if strings.HasSuffix(s, suf) {
			return s[:len(s)-len(suf)]
		}
	}
	return s
}

func lowerSlow(s string) string { return strings.ToLower(s) }
