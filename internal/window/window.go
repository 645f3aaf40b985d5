// Package window cuts texts to a model's input window on our side, before
// they are sent: passages to the teacher's window (query and passage share
// it), texts to the embedder's. A server that refuses an input over its
// window fails the item; one that cuts it silently scores or embeds
// something else than asked; cutting here makes both predictable and puts
// the setting in the fingerprint.
package window

import (
	"context"
	"regexp"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/synthq/synthq/internal/tokens"
)

// Cutter cuts texts to MaxTokens tokens counted by Count. The zero value
// (MaxTokens 0) cuts nothing. Safe for concurrent use if Count is.
type Cutter struct {
	MaxTokens int
	// Reserve is the tokens the model's input format adds around the text
	// ([CLS] … [SEP] … [SEP] for a cross-encoder pair).
	Reserve int
	// Count counts a text's tokens: a tokenizer.json's (Local) or the
	// model server's own (tokenize.Server, one request a count); nil:
	// tokens.Encoder. Its errors are the Cutter's.
	Count func(ctx context.Context, text string) (int, error)
	// CountName names Count for fingerprints; "" means the estimate (and
	// must be "" exactly when Count is nil).
	CountName string
	// Remote says that Count asks a server: a text's cut is known only by
	// asking, so callers that key stored results by the cut text key them
	// by the whole text and Desc instead (see embed.Client.Key).
	Remote bool
}

// Local adapts a counter that cannot fail (a tokenizer.json's Count) to
// Cutter.Count.
func Local(count func(string) int) func(context.Context, string) (int, error) {
	return func(_ context.Context, s string) (int, error) { return count(s), nil }
}

// MinTokens is the least a text keeps when the rest of the window is taken
// (a query longer than the teacher's window).
const MinTokens = 16

// Desc describes the cut for fingerprints: "" when nothing is cut, else the
// window and how tokens are counted. Any change of either changes it.
func (c Cutter) Desc() string {
	if c.MaxTokens <= 0 {
		return ""
	}
	counter := "estimate-3-bytes"
	switch {
	case c.Remote:
		counter = "server-tokenize" // the model, in every fingerprint beside the window, names the tokenizer
	case c.CountName != "":
		counter = "tokenizer:" + c.CountName
	}
	return "window:" + strconv.Itoa(c.MaxTokens) + "-" + strconv.Itoa(c.Reserve) + ":" + counter
}

func (c Cutter) count(ctx context.Context, s string) (int, error) {
	if c.Count != nil {
		return c.Count(ctx, s)
	}
	return tokens.Encoder(s), nil
}

// Tokens counts text as the cutter does.
func (c Cutter) Tokens(ctx context.Context, text string) (int, error) { return c.count(ctx, text) }

// Cut returns text cut so that it and used other tokens (a query sharing the
// window) fit MaxTokens with the Reserve, and whether it was cut. The cut
// falls on a word boundary (after the last whole word that fits; inside a
// word only when the first word alone is too long), never inside a UTF-8
// sequence. Cost: one count if the text fits, else a binary search over its
// word boundaries (O(log words) counts: ~10 requests for a 1,000-word text
// when Count asks a server). err is Count's.
func (c Cutter) Cut(ctx context.Context, text string, used int) (string, bool, error) {
	if c.MaxTokens <= 0 || text == "" {
		return text, false, nil
	}
	budget := max(c.MaxTokens-c.Reserve-used, MinTokens)
	n, err := c.count(ctx, text)
	if err != nil || n <= budget {
		return text, false, err
	}
	cut, err := c.cutTo(ctx, text, budget)
	if err != nil {
		return text, false, err
	}
	return cut, true, nil
}

// cutTo cuts text to at most budget tokens (see Cut).
func (c Cutter) cutTo(ctx context.Context, text string, budget int) (string, error) {
	// Ends of words: the index just past each word.
	var ends []int
	inWord := false
	for i, r := range text {
		sp := unicode.IsSpace(r)
		if inWord && sp {
			ends = append(ends, i)
		}
		inWord = !sp
	}
	lo, hi := 0, len(ends) // ends[:lo] fit; find the largest k with text[:ends[k-1]] fitting
	for lo < hi {
		mid := (lo + hi + 1) / 2
		n, err := c.count(ctx, text[:ends[mid-1]])
		if err != nil {
			return "", err
		}
		if n <= budget {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo > 0 {
		return text[:ends[lo-1]], nil
	}
	// The first word alone is over the budget: cut it by runes.
	n := 0
	for n < len(text) {
		_, size := utf8.DecodeRuneInString(text[n:])
		k, err := c.count(ctx, text[:n+size])
		if err != nil {
			return "", err
		}
		if k > budget {
			break
		}
		n += size
	}
	return text[:n], nil
}

// Stated reads what a server said when it refused an input as too long:
// the tokens it counted (stated) and its window (limit, 0 when it did not
// say). ok is false when the message states no count. The forms:
//
//   - llama.cpp: "input (617 tokens) is too large to process. increase the
//     physical batch size (current batch size: 512)"
//   - vLLM / OpenAI: "This model's maximum context length is 512 tokens.
//     However, you requested 617 tokens (…)"
//   - llama.cpp, over a slot's context: "request (617 tokens) exceeds the
//     available context size (512 tokens), try increasing it"
//   - TEI: "Input validation error: `inputs` must have less than 512 tokens.
//     Given: 617"
func Stated(msg string) (stated, limit int, ok bool) {
	atoi := func(re *regexp.Regexp) int {
		if m := re.FindStringSubmatch(msg); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil {
				return n
			}
		}
		return 0
	}
	stated = max(atoi(reInputTokens), atoi(reRequested), atoi(reGiven))
	limit = max(atoi(reBatchSize), atoi(reMaxContext), atoi(reLessThan), atoi(reContextSize))
	return stated, limit, stated > 0
}

var (
	reInputTokens = regexp.MustCompile(`(?i)(?:input|request) \((\d+) tokens\)`)
	reContextSize = regexp.MustCompile(`(?i)context size \((\d+) tokens\)`)
	reRequested   = regexp.MustCompile(`(?i)requested (\d+) tokens`)
	reGiven       = regexp.MustCompile(`(?i)given:? (\d+)`)
	reBatchSize   = regexp.MustCompile(`(?i)current batch size:? (\d+)`)
	reMaxContext  = regexp.MustCompile(`(?i)maximum context length is (\d+)`)
	reLessThan    = regexp.MustCompile(`(?i)less than (\d+) tokens`)
)

// MaxRecuts is how many times a client cuts one refused input again before
// it fails the item with the server's words.
const MaxRecuts = 3

// RecutMargin is the share of the server's window a text cut again aims
// at: the count that proved wrong once is not trusted to the token.
const RecutMargin = 0.9

// Recut cuts text again after the server refused it as too long (msg is
// the server's words), with used tokens of other input beside it (the
// query, for a teacher's pair), as Cut counts them. Where the server
// states its count (Stated), the whole input is scaled by window/stated
// with a margin: the text keeps (used + text + Reserve)·RecutMargin·window/
// stated − used − Reserve tokens of our count, window being the server's
// limit if it said it, else MaxTokens. Where it states none, the text keeps
// three quarters of its count. ok is false when nothing is cut (no window
// is set: the user asked for no cut) or the text cannot get shorter. Each
// call shrinks the text, so a caller that retries a few times converges.
// err is Count's.
func (c Cutter) Recut(ctx context.Context, text string, used int, msg string) (string, bool, error) {
	if c.MaxTokens <= 0 || text == "" {
		return text, false, nil
	}
	have, err := c.count(ctx, text)
	if err != nil {
		return text, false, err
	}
	budget := have * 3 / 4
	if stated, limit, ok := Stated(msg); ok {
		if limit <= 0 {
			limit = c.MaxTokens
		}
		total := float64(used + have + c.Reserve)
		budget = int(total*RecutMargin*float64(limit)/float64(stated)) - used - c.Reserve
	}
	budget = min(budget, have-max(1, have/20)) // always shorter, by at least 5%
	if budget < 1 {
		return text, false, nil
	}
	cut, err := c.cutTo(ctx, text, budget)
	if err != nil || cut == "" || len(cut) >= len(text) {
		return text, false, err
	}
	return cut, true, nil
}
