package prompts

import (
	"regexp"
	"strings"
	"unicode"
)

// Drop reasons for a model answer that yields no query.
const (
	DropEmpty   = "empty"
	DropRefusal = "refusal"
	DropTooLong = "too_long"
	DropCopied  = "copied_passage"
	DropNoWords = "no_words"
)

// ParseOptions bound what a parsed query may be. Zero fields take the
// defaults of the paper's settings.
type ParseOptions struct {
	MaxWords       int // longest query kept, in words (default 20)
	MaxCopiedWords int // longest run of consecutive passage words a query may repeat (default 10)
	MaxKeywords    int // keywords kept for the keywords type (default 5)
}

// EnsureDefaults fills zero fields.
func (o *ParseOptions) EnsureDefaults() {
	if o.MaxWords == 0 {
		o.MaxWords = 20
	}
	if o.MaxCopiedWords == 0 {
		o.MaxCopiedWords = 10
	}
	if o.MaxKeywords == 0 {
		o.MaxKeywords = 5
	}
}

var (
	refusalRe = regexp.MustCompile(`(?i)^\W*(i\s+(cannot|can't|can ?not|won't|am unable|am not able|'m unable|'m not able|apologi[sz]e)|i'm sorry|i am sorry|sorry[,.!]|as an ai\b|unfortunately,? (i|the passage)|there is no (question|query)|the passage (does not|doesn't) (contain|provide))`)
	// An inline preamble followed by the query on the same line.
	inlinePreambleRe = regexp.MustCompile(`(?i)^\W*(?:(?:sure|certainly|okay|ok|of course)[!,.]?\s*)?(?:here(?:\s+is|'s|\s+are)|below is)\b[^:\n]{0,80}:\s*(\S.*)$`)
	bulletRe         = regexp.MustCompile(`^\s*(?:[-*•·–]|\(?\d{1,2}[.)]|\d{1,2}\s*[-:])\s+`)
	labelRe          = regexp.MustCompile(`(?i)^\s*(?:\*\*|__)?\s*(?:generated\s+|search\s+|web\s+|natural\s+|synthetic\s+)?(?:query|question|claim|title|keywords?|key\s*phrases?|answer|search|output)(?:\s*#?\s*\d+)?\s*(?:\*\*|__)?\s*[:：\-–—]\s*(?:\*\*|__)?\s*`)
	wsRe             = regexp.MustCompile(`\s+`)
)

// Parse turns one raw model answer into a query, or returns a drop reason.
// It is a pure function of its inputs: a parser fix re-parses stored answers
// without any new request. It handles what instruct models write around the
// query: a preamble, quotes, bullets or numbering, labels ("Query:",
// "Question 1:"), markdown emphasis, several candidates on separate lines (the
// first is kept) and an explanation after a blank line.
func Parse(qtype, answer, passage string, opts ParseOptions) (query, drop string) {
	opts.EnsureDefaults()
	text := strings.TrimSpace(strings.ReplaceAll(answer, "\r\n", "\n"))
	if text == "" {
		return "", DropEmpty
	}
	if refusalRe.MatchString(text) {
		return "", DropRefusal
	}
	lines := candidateLines(text)
	if len(lines) == 0 {
		return "", DropEmpty
	}
	if qtype == "keywords" {
		query = joinKeywords(lines, opts.MaxKeywords)
	} else {
		query = lines[0]
	}
	query = strings.TrimSpace(wsRe.ReplaceAllString(query, " "))
	if query == "" {
		return "", DropEmpty
	}
	if refusalRe.MatchString(query) {
		return "", DropRefusal
	}
	qw := normWords(query)
	if len(qw) == 0 {
		return "", DropNoWords
	}
	if len(strings.Fields(query)) > opts.MaxWords {
		return "", DropTooLong
	}
	if longestCommonRun(qw, normWords(passage)) > opts.MaxCopiedWords {
		return "", DropCopied
	}
	return query, ""
}

// candidateLines returns the cleaned lines of the first block of content,
// skipping preamble lines and stopping at the blank line that precedes an
// explanation.
func candidateLines(text string) []string {
	var out []string
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" {
			if len(out) > 0 {
				break
			}
			continue
		}
		if len(out) == 0 {
			if m := inlinePreambleRe.FindStringSubmatch(line); m != nil {
				line = m[1]
			} else if strings.HasSuffix(strings.TrimRight(line, "*_ "), ":") {
				// "Here is a question based on the passage:" or a bare label line.
				continue
			}
		}
		if c := cleanLine(line); c != "" {
			out = append(out, c)
		}
	}
	return out
}

// cleanLine strips bullets, numbering, labels, emphasis and quotes.
func cleanLine(s string) string {
	for i := 0; i < 3; i++ {
		prev := s
		s = bulletRe.ReplaceAllString(s, "")
		s = labelRe.ReplaceAllString(s, "")
		s = strings.TrimSpace(s)
		s = trimPairs(s)
		if s == prev {
			break
		}
	}
	return s
}

// quotePairs are the wrappers trimPairs strips.
var quotePairs = [][2]string{{`"`, `"`}, {"'", "'"}, {"“", "”"}, {"‘", "’"}, {"«", "»"}, {"`", "`"}, {"**", "**"}, {"__", "__"}, {"*", "*"}}

// trimPairs strips the quotes, backticks and emphasis that wrap s, as often
// as they do, and a quote closed before trailing punctuation ("What is
// X"?). Cost: linear in len(s): each round strips at least one character
// at an end in constant time; the quote counts the punctuation rule needs
// are kept up to date as ends are stripped, not recounted (a model's run of
// 80,000 quotes took 157 ms when they were, 25 s per MB).
func trimPairs(s string) string {
	dq, lq, rq := strings.Count(s, `"`), strings.Count(s, "“"), strings.Count(s, "”")
	for changed := true; changed; {
		changed = false
		s = strings.TrimSpace(s)
		for _, p := range quotePairs {
			if len(s) >= len(p[0])+len(p[1]) && strings.HasPrefix(s, p[0]) && strings.HasSuffix(s, p[1]) {
				switch p[0] {
				case `"`:
					dq -= 2
				case "“":
					lq, rq = lq-1, rq-1
				}
				s = s[len(p[0]) : len(s)-len(p[1])]
				changed = true
			}
		}
		// A quote closed before trailing punctuation: "What is X"?
		for _, q := range []string{`"`, "“"} {
			n := dq + rq
			if q == "“" {
				n = lq + rq
			}
			if strings.HasPrefix(s, q) && n == 2 {
				inner := strings.TrimPrefix(s, q)
				if i := strings.LastIndexAny(inner, "\"”"); i >= 0 && len(strings.TrimSpace(inner[i+1:])) <= 1 {
					// At most twice per call: each time two of the
					// counted quotes go, and counts never grow.
					s = inner[:i] + strings.TrimSpace(inner[i+1:])
					dq, lq, rq = strings.Count(s, `"`), strings.Count(s, "“"), strings.Count(s, "”")
					changed = true
				}
			}
		}
	}
	return s
}

// joinKeywords merges keyword lines (one per line or comma-separated) into at
// most max comma-separated keywords.
func joinKeywords(lines []string, max int) string {
	var kws []string
	for _, l := range lines {
		for _, k := range strings.FieldsFunc(l, func(r rune) bool { return r == ',' || r == ';' }) {
			k = strings.TrimSpace(strings.TrimRight(trimPairs(strings.TrimSpace(k)), "."))
			if k != "" {
				kws = append(kws, k)
			}
		}
	}
	if len(kws) > max {
		kws = kws[:max]
	}
	return strings.Join(kws, ", ")
}

// Normalize lowercases a query and reduces it to its letters and digits
// separated by single spaces: the key under which duplicates are counted.
func Normalize(s string) string { return strings.Join(normWords(s), " ") }

func normWords(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
}

// longestCommonRun is the length of the longest run of consecutive words
// shared by q and p (dynamic programming over q×p words; q is short).
func longestCommonRun(q, p []string) int {
	if len(q) == 0 || len(p) == 0 {
		return 0
	}
	prev := make([]int, len(p)+1)
	cur := make([]int, len(p)+1)
	best := 0
	for i := 1; i <= len(q); i++ {
		for j := 1; j <= len(p); j++ {
			if q[i-1] == p[j-1] {
				cur[j] = prev[j-1] + 1
				if cur[j] > best {
					best = cur[j]
				}
			} else {
				cur[j] = 0
			}
		}
		prev, cur = cur, prev
	}
	return best
}
