// Package tokenize counts tokens with a Hugging Face tokenizer.json of the
// byte-level BPE family (Llama 3, GPT-2, Qwen, Mistral Nemo and most recent
// models): the file's own pre-tokenizer regex, the byte-to-unicode map and
// the BPE merges by rank. It is used for exact prompt token counts in a dry
// run; it does not need the added (special) tokens, since prompts contain
// none.
package tokenize

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dlclark/regexp2"
	"github.com/synthq/synthq/internal/tokens"
	"golang.org/x/text/unicode/norm"
)

// gpt2Pattern is ByteLevel's built-in split (use_regex: true).
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// Tokenizer counts tokens. It is safe for concurrent use.
type Tokenizer struct {
	name      string
	normalize func(string) string
	splits    []*regexp2.Regexp // applied in order; each piece is split again by the next
	byteLevel bool
	vocab     map[string]int
	ranks     map[[2]string]int
	ignoreMrg bool
	mu        sync.Mutex
	cache     map[string]int // word -> tokens (bounded)
	err       error          // the first pre-tokenizer failure (see Err)
}

// MatchTimeout bounds one match of a pre-tokenizer pattern. A pattern from
// a user's tokenizer.json can backtrack catastrophically (seconds or hours on
// one string); regexp2 has no linear-time guarantee. Real patterns take
// microseconds on a passage.
const MatchTimeout = time.Second

type fileFormat struct {
	Normalizer   *component `json:"normalizer"`
	PreTokenizer *component `json:"pre_tokenizer"`
	Model        struct {
		Type         string          `json:"type"`
		Vocab        map[string]int  `json:"vocab"`
		Merges       json.RawMessage `json:"merges"`
		IgnoreMerges bool            `json:"ignore_merges"`
		ByteFallback bool            `json:"byte_fallback"`
	} `json:"model"`
}

type component struct {
	Type          string       `json:"type"`
	Pretokenizers []*component `json:"pretokenizers"`
	Normalizers   []*component `json:"normalizers"`
	Pattern       *struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Behavior string `json:"behavior"`
	Invert   bool   `json:"invert"`
	UseRegex *bool  `json:"use_regex"`
}

// Load reads a tokenizer.json. Unsupported parts (a model other than BPE, a
// SentencePiece-style byte fallback, an unknown pre-tokenizer) are errors
// naming the part, never a silently wrong count.
func Load(path string) (*Tokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokenizer: %w", err)
	}
	t, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	t.name = "tokenizer " + path
	return t, nil
}

func parse(b []byte) (*Tokenizer, error) {
	var f fileFormat
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("not a tokenizer.json: %w", err)
	}
	if f.Model.Type != "BPE" {
		return nil, fmt.Errorf("model type %q: only byte-level BPE is supported", f.Model.Type)
	}
	if f.Model.ByteFallback {
		return nil, fmt.Errorf("byte_fallback BPE (SentencePiece style) is not supported")
	}
	t := &Tokenizer{vocab: f.Model.Vocab, ranks: map[[2]string]int{}, ignoreMrg: f.Model.IgnoreMerges,
		cache: map[string]int{}, normalize: func(s string) string { return s }}
	// Merges come as "a b" strings (older files) or ["a","b"] pairs.
	var asStrings []string
	var asPairs [][2]string
	if err := json.Unmarshal(f.Model.Merges, &asStrings); err == nil {
		for i, m := range asStrings {
			a, c, ok := strings.Cut(m, " ")
			if !ok {
				return nil, fmt.Errorf("merge %d %q: want two symbols", i, m)
			}
			t.ranks[[2]string{a, c}] = i
		}
	} else if err := json.Unmarshal(f.Model.Merges, &asPairs); err == nil {
		for i, m := range asPairs {
			t.ranks[m] = i
		}
	} else {
		return nil, fmt.Errorf("model.merges: want strings or pairs")
	}
	if err := t.setNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if err := t.addPre(f.PreTokenizer); err != nil {
		return nil, err
	}
	if !t.byteLevel {
		return nil, fmt.Errorf("no ByteLevel pre-tokenizer: only byte-level BPE is supported")
	}
	return t, nil
}

func (t *Tokenizer) setNormalizer(c *component) error {
	if c == nil {
		return nil
	}
	switch c.Type {
	case "NFC":
		t.normalize = norm.NFC.String
	case "NFKC":
		t.normalize = norm.NFKC.String
	case "Sequence":
		if len(c.Normalizers) == 0 {
			return nil
		}
		if len(c.Normalizers) == 1 {
			return t.setNormalizer(c.Normalizers[0])
		}
		fallthrough
	default:
		return fmt.Errorf("normalizer %q is not supported", c.Type)
	}
	return nil
}

func (t *Tokenizer) addPre(c *component) error {
	if c == nil {
		return nil
	}
	switch c.Type {
	case "Sequence":
		for _, p := range c.Pretokenizers {
			if err := t.addPre(p); err != nil {
				return err
			}
		}
	case "Split":
		if c.Pattern == nil || c.Invert || (c.Behavior != "Isolated" && c.Behavior != "") {
			return fmt.Errorf("Split pre-tokenizer: only an Isolated, non-inverted pattern is supported")
		}
		var re *regexp2.Regexp
		var err error
		switch {
		case c.Pattern.Regex != nil:
			re, err = regexp2.Compile(*c.Pattern.Regex, regexp2.Unicode)
		case c.Pattern.String != nil:
			re, err = regexp2.Compile(regexp2.Escape(*c.Pattern.String), regexp2.Unicode)
		}
		if err != nil || re == nil {
			return fmt.Errorf("Split pattern: %v", err)
		}
		re.MatchTimeout = MatchTimeout
		t.splits = append(t.splits, re)
	case "ByteLevel":
		t.byteLevel = true
		if c.UseRegex == nil || *c.UseRegex {
			re := regexp2.MustCompile(gpt2Pattern, regexp2.Unicode)
			re.MatchTimeout = MatchTimeout
			t.splits = append(t.splits, re)
		}
	default:
		return fmt.Errorf("pre-tokenizer %q is not supported", c.Type)
	}
	return nil
}

// Name says which tokenizer counted.
func (t *Tokenizer) Name() string { return t.name }

// Count returns the number of tokens of text (no special tokens added).
// It costs one regex pass and, per distinct word, one BPE merge loop
// (quadratic in the word's bytes; words are cached).
// If a pattern times out (see MatchTimeout) Count returns an estimate (4
// bytes a token) and Err reports the failure.
func (t *Tokenizer) Count(text string) int {
	pieces, err := t.pieces(t.normalize(text))
	if err != nil {
		t.mu.Lock()
		if t.err == nil {
			t.err = err
		}
		t.mu.Unlock()
		return tokens.Estimate(text)
	}
	n := 0
	for _, w := range pieces {
		n += t.countWord(w)
	}
	return n
}

// Err is the first failure of a pre-tokenizer pattern met by Count (a match
// that took longer than MatchTimeout), or nil: counts made after one are
// estimates.
func (t *Tokenizer) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Pieces splits text as the pre-tokenizers do (before the byte mapping). A
// pattern that times out leaves the rest of text in one piece.
func (t *Tokenizer) Pieces(text string) []string {
	p, _ := t.pieces(text)
	return p
}

func (t *Tokenizer) pieces(text string) ([]string, error) {
	pieces := []string{text}
	for _, re := range t.splits {
		var next []string
		for _, p := range pieces {
			split, err := splitIsolated(re, p)
			next = append(next, split...)
			if err != nil {
				return next, fmt.Errorf("%s: pre-tokenizer pattern %.80q took longer than %s on a %d-byte text (a pattern that backtracks without bound?): %w",
					t.name, re.String(), re.MatchTimeout, len(p), err)
			}
		}
		pieces = next
	}
	return pieces, nil
}

// splitIsolated returns the matches of re in s and the text between them,
// in order, without empty pieces.
func splitIsolated(re *regexp2.Regexp, s string) ([]string, error) {
	rs := []rune(s)
	var out []string
	last := 0
	m, err := re.FindRunesMatch(rs)
	for m != nil {
		if m.Index > last {
			out = append(out, string(rs[last:m.Index]))
		}
		if m.Length > 0 {
			out = append(out, string(rs[m.Index:m.Index+m.Length]))
		}
		last = m.Index + m.Length
		m, err = re.FindNextMatch(m)
	}
	if last < len(rs) {
		out = append(out, string(rs[last:]))
	}
	return out, err
}

func (t *Tokenizer) countWord(w string) int {
	t.mu.Lock()
	n, ok := t.cache[w]
	t.mu.Unlock()
	if ok {
		return n
	}
	n = len(t.BPE(w))
	t.mu.Lock()
	if len(t.cache) > 1<<20 {
		clear(t.cache)
	}
	t.cache[w] = n
	t.mu.Unlock()
	return n
}

// BPE returns the tokens of one pre-tokenized piece: its bytes mapped to
// the byte-level alphabet, then merged pair by pair, lowest rank first.
func (t *Tokenizer) BPE(piece string) []string {
	var sb strings.Builder
	for i := 0; i < len(piece); i++ {
		sb.WriteRune(byteRune[piece[i]])
	}
	word := sb.String()
	if t.ignoreMrg {
		if _, ok := t.vocab[word]; ok {
			return []string{word}
		}
	}
	var syms []string
	for _, r := range word {
		syms = append(syms, string(r))
	}
	for len(syms) > 1 {
		best, at := -1, -1
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := t.ranks[[2]string{syms[i], syms[i+1]}]; ok && (best < 0 || r < best) {
				best, at = r, i
			}
		}
		if at < 0 {
			break
		}
		syms[at] += syms[at+1]
		syms = append(syms[:at+1], syms[at+2:]...)
	}
	return syms
}

// byteRune is GPT-2's bytes_to_unicode map: printable bytes stand for
// themselves, the others are shifted to code points from 256 up.
var byteRune = func() [256]rune {
	var m [256]rune
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			m[b] = rune(b)
		} else {
			m[b] = rune(256 + n)
			n++
		}
	}
	return m
}()
