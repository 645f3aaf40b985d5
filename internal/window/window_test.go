package window

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/synthq/synthq/internal/tokens"
)

// Cut keeps whole words within the budget (query tokens and reserve
// counted), leaves short texts alone, never splits a UTF-8 sequence, and is
// idempotent (a stored key of a cut text stays the key of its cut).
func TestCut(t *testing.T) {
	words := func(s string) int { return len(strings.Fields(s)) }
	long := strings.Repeat("alpha beta gamma ", 100) // 300 words, 1700 bytes
	cases := []struct {
		name  string
		c     Cutter
		text  string
		used  int
		check func(t *testing.T, got string, cut bool)
	}{
		{"no window", Cutter{}, long, 0, func(t *testing.T, got string, cut bool) {
			if cut || got != long {
				t.Error("cut without a window")
			}
		}},
		{"short text", Cutter{MaxTokens: 512}, "a short passage", 0, func(t *testing.T, got string, cut bool) {
			if cut {
				t.Error("cut a short text")
			}
		}},
		{"estimate: 3 bytes a token", Cutter{MaxTokens: 110, Reserve: 10}, long, 0, func(t *testing.T, got string, cut bool) {
			if !cut || len(got) > 300 || len(got) < 290 || !strings.HasSuffix(got, "a") && !strings.HasSuffix(got, "beta") {
				t.Errorf("cut to %d bytes %q", len(got), got[max(0, len(got)-12):])
			}
		}},
		{"tokenizer, query counted", Cutter{MaxTokens: 50, Reserve: 5, Count: Local(words), CountName: "words"}, long, 15, func(t *testing.T, got string, cut bool) {
			if !cut || words(got) != 30 {
				t.Errorf("kept %d words, want 50-5-15 = 30", words(got))
			}
		}},
		{"one long word, multibyte", Cutter{MaxTokens: 20}, strings.Repeat("é", 100), 0, func(t *testing.T, got string, cut bool) {
			if !cut || !utf8.ValidString(got) || tokens.Encoder(got) > 20 || tokens.Encoder(got) < 19 {
				t.Errorf("cut %q", got)
			}
		}},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, cut, err := tc.c.Cut(ctx, tc.text, tc.used)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, got, cut)
			if again, _, _ := tc.c.Cut(ctx, got, tc.used); again != got {
				t.Errorf("not idempotent: %d then %d bytes", len(got), len(again))
			}
		})
	}
	if (Cutter{MaxTokens: 512}).Desc() == (Cutter{MaxTokens: 256}).Desc() || (Cutter{}).Desc() != "" {
		t.Error("Desc does not tell windows apart")
	}
}

func TestStated(t *testing.T) {
	cases := []struct {
		msg         string
		stated, lim int
		ok          bool
	}{
		{"input (617 tokens) is too large to process. increase the physical batch size (current batch size: 512)", 617, 512, true},
		{"input (607 tokens) is too large to process. increase the physical batch size", 607, 0, true},
		{"This model's maximum context length is 512 tokens. However, you requested 617 tokens in the input for embedding generation. Please reduce the length of the input.", 617, 512, true},
		{"This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (8950 in the messages, 50 in the completion).", 9000, 8192, true},
		{"Input validation error: `inputs` must have less than 512 tokens. Given: 617", 617, 512, true},
		{"input is too large to process. increase the physical batch size", 0, 0, false},
		{"the request exceeds the available context size, try increasing it", 0, 0, false},
		{"request (617 tokens) exceeds the available context size (512 tokens), try increasing it", 617, 512, true},
	}
	for _, tc := range cases {
		s, l, ok := Stated(tc.msg)
		if s != tc.stated || l != tc.lim || ok != tc.ok {
			t.Errorf("Stated(%q) = %d, %d, %v; want %d, %d, %v", tc.msg, s, l, ok, tc.stated, tc.lim, tc.ok)
		}
	}
}

// A text of short tokens (a table of contents: ". . . . 394 POLLINATION")
// cut by the 3-bytes-a-token estimate is over a 512-token window by the
// server's count; cut again from the count the server states, it fits
// within a few rounds, for an embedder's text and a teacher's pair alike.
func TestRecutConverges(t *testing.T) {
	// The server's tokenizer: every run of dots or spaces-and-dots is a
	// token per dot, words a token per 4 bytes.
	server := func(s string) int {
		n := 0
		for _, w := range strings.Fields(s) {
			if strings.Trim(w, ".") == "" {
				n += len(w)
				continue
			}
			n += (len(w) + 3) / 4
		}
		return n
	}
	toc := strings.Repeat(". . . . . . 394 POLLINATION AND POLLEN TUBE GROWTH . . . . . . ", 60)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		reserve int
		query   string
	}{{"embed", 2, ""}, {"teacher pair", 8, "how does the pollen tube grow toward the ovule"}} {
		t.Run(tc.name, func(t *testing.T) {
			c := Cutter{MaxTokens: 512, Reserve: tc.reserve}
			used, _ := c.Tokens(ctx, tc.query)
			text, _, _ := c.Cut(ctx, toc, used)
			rounds := 0
			for {
				n := server(tc.query) + server(text) + tc.reserve
				if n <= 512 {
					break
				}
				if rounds++; rounds > 3 {
					t.Fatalf("still %d server tokens after 3 cuts again", n)
				}
				msg := fmt.Sprintf("input (%d tokens) is too large to process. increase the physical batch size (current batch size: 512)", n)
				cut, ok, err := c.Recut(ctx, text, used, msg)
				if err != nil {
					t.Fatal(err)
				}
				if !ok || len(cut) >= len(text) {
					t.Fatalf("round %d: no shorter cut (%v)", rounds, ok)
				}
				text = cut
			}
			n := server(tc.query) + server(text) + tc.reserve
			t.Logf("fits after %d cut(s) again: %d server tokens, %d bytes", rounds, n, len(text))
			if rounds == 0 {
				t.Fatal("the estimate's cut already fit: the test shows nothing")
			}
			if n < 512*7/10 {
				t.Errorf("cut to %d server tokens: far more than needed was thrown away", n)
			}
		})
	}
	if _, ok, _ := (Cutter{}).Recut(ctx, "text", 0, "input (600 tokens) is too large"); ok {
		t.Error("no window set: nothing may be cut again")
	}
}

// A counter that asks a server passes its failure on (the request's fault,
// for the caller to classify), never a guessed cut; a remote count is named
// apart from a tokenizer.json of the same name in the fingerprint.
func TestCountErrors(t *testing.T) {
	ctx := context.Background()
	down := errors.New("teacher endpoint down")
	calls := 0
	c := Cutter{MaxTokens: 20, Remote: true, CountName: "m", Count: func(_ context.Context, s string) (int, error) {
		if calls++; calls > 1 {
			return 0, down
		}
		return len(strings.Fields(s)), nil
	}}
	long := strings.Repeat("word ", 100)
	if got, cut, err := c.Cut(ctx, long, 0); !errors.Is(err, down) || cut || got != long {
		t.Errorf("Cut with a failing count: %d bytes, cut %v, err %v; want the text whole and the count's error", len(got), cut, err)
	}
	calls = 1
	if _, ok, err := c.Recut(ctx, long, 0, "input (30 tokens) is too large"); !errors.Is(err, down) || ok {
		t.Errorf("Recut with a failing count: ok %v, err %v", ok, err)
	}
	local := c
	local.Remote = false
	if c.Desc() == local.Desc() || !strings.Contains(c.Desc(), "server") {
		t.Errorf("Desc %q vs %q: a server's count must be named apart", c.Desc(), local.Desc())
	}
}
