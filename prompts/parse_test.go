package prompts

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

const passage = "Sync error 0x80070005 means the account running the client cannot write to the sync folder. Grant that account Modify permission on the folder and restart the client to resume syncing."

// Answers in the shapes Llama-3.1-8B-Instruct and similar instruct models
// write, with what the parser must make of them.
func TestParseRealisticAnswers(t *testing.T) {
	cases := []struct {
		name, qtype, answer, want, drop string
	}{
		{"plain", "questions", "What causes sync error 0x80070005?", "What causes sync error 0x80070005?", ""},
		{"preamble and blank line", "questions", "Here is a question based on the passage:\n\nWhat permission does the sync account need?", "What permission does the sync account need?", ""},
		{"inline preamble", "questions", "Here is a question: What permission does the sync account need?", "What permission does the sync account need?", ""},
		{"sure preamble", "claims", "Sure! Here's a claim based on the passage:\n\nSync errors are caused by missing folder permissions.", "Sync errors are caused by missing folder permissions.", ""},
		{"quotes", "questions", "\"Why can't the client write to the folder?\"", "Why can't the client write to the folder?", ""},
		{"curly quotes", "titles", "“Fixing access denied sync errors”", "Fixing access denied sync errors", ""},
		{"quote before mark", "questions", "\"How do I fix error 0x80070005\"?", "How do I fix error 0x80070005?", ""},
		{"label", "questions", "Question: How do I fix error 0x80070005?", "How do I fix error 0x80070005?", ""},
		{"numbered label", "questions", "Question 1: How do I fix error 0x80070005?", "How do I fix error 0x80070005?", ""},
		{"bold label", "msmarco", "**Query:** fix sync error 0x80070005", "fix sync error 0x80070005", ""},
		{"numbering", "questions", "1. How do I fix error 0x80070005?\n2. What is Modify permission?", "How do I fix error 0x80070005?", ""},
		{"bullets", "titles", "- Access denied in the sync client\n- Folder permissions", "Access denied in the sync client", ""},
		{"trailing explanation", "msmarco", "sync error 0x80070005 fix\n\nThis query is short and typed like a web search.", "sync error 0x80070005 fix", ""},
		{"keywords comma", "keywords", "0x80070005, access denied, folder permissions, sync client, restart, modify rights", "0x80070005, access denied, folder permissions, sync client, restart", ""},
		{"keywords lines", "keywords", "Keywords:\n- sync error\n- permissions\n- 0x80070005", "sync error, permissions, 0x80070005", ""},
		{"empty", "questions", "  \n ", "", DropEmpty},
		{"refusal", "questions", "I cannot create a question from this passage as it does not contain enough information.", "", DropRefusal},
		{"sorry", "claims", "I'm sorry, but I can't help with that.", "", DropRefusal},
		{"only preamble", "questions", "Here is a question based on the passage:", "", DropEmpty},
		{"too long", "questions", "What should an administrator do when the sync client reports that the account running it cannot write to the local sync folder on a Windows machine?", "", DropTooLong},
		{"copied", "claims", "The account running the client cannot write to the sync folder and needs Modify permission", "", DropCopied},
		{"punctuation only", "questions", "???", "", DropNoWords},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, drop := Parse(tc.qtype, tc.answer, passage, ParseOptions{})
			if got != tc.want || drop != tc.drop {
				t.Errorf("Parse(%q) = %q, %q; want %q, %q", tc.answer, got, drop, tc.want, tc.drop)
			}
		})
	}
}

func TestNormalizeForDedup(t *testing.T) {
	if a, b := Normalize("What causes Error 0x80070005?"), Normalize("what causes error 0x80070005"); a != b {
		t.Errorf("%q != %q", a, b)
	}
}

func TestCutPassage(t *testing.T) {
	cases := []struct {
		in   string
		max  int
		want string
	}{
		{"short text", 100, "short text"},
		{"one two three four", 9, "one two"},
		{"one two three four", 7, "one two"},
		{"unbreakableword", 5, "unbre"},
		{"héllo wörld again", 11, "héllo wörld"},
		{"anything", 0, "anything"},
	}
	for _, tc := range cases {
		if got := CutPassage(tc.in, tc.max); got != tc.want {
			t.Errorf("CutPassage(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func TestDrawIsSeededAndExcludesTarget(t *testing.T) {
	p := DefaultPool()
	target := p["questions"][0].Passage
	a := p.Draw("questions", 7, "doc1", target, 3, 2048)
	b := p.Draw("questions", 7, "doc1", target, 3, 2048)
	c := p.Draw("questions", 8, "doc1", target, 3, 2048)
	if len(a) != 3 || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] {
		t.Fatalf("same seed drew %v then %v", a, b)
	}
	same := a[0] == c[0] && a[1] == c[1] && a[2] == c[2]
	if same {
		t.Errorf("another seed drew the same examples")
	}
	for _, ex := range a {
		if ex.Passage == target {
			t.Errorf("the target passage was shown as an example")
		}
	}
}

func TestReadPoolErrors(t *testing.T) {
	cases := map[string]string{
		`{"type":"questions","passage":"p","query":"q"}` + "\n" + `{"type":"question","passage":"p","query":"q"}`: `ex.jsonl:2: field "type": unknown query type "question"`,
		`{"type":"random","passage":"p","query":"q"}`:                                                             `ex.jsonl:1: field "type": "random" is zero-shot`,
		`{"type":"claims","passage":"","query":"q"}`:                                                              `ex.jsonl:1: field "passage": missing or empty`,
		`{"type":"claims","passage":"p"}`:                                                                         `ex.jsonl:1: field "query": missing or empty`,
		`not json`:                                                                                                `ex.jsonl:1: invalid JSON`,
	}
	for in, want := range cases {
		if _, err := ReadPool(strings.NewReader(in), "ex.jsonl"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadPool(%q) error = %v, want %q", in, err, want)
		}
	}
	if _, err := ParseTypes("questions,bogus"); err == nil || !strings.Contains(err.Error(), `unknown query type "bogus"`) {
		t.Errorf("ParseTypes: %v", err)
	}
}

func TestTemplatesRenderEveryType(t *testing.T) {
	tm, err := LoadTemplates()
	if err != nil {
		t.Fatal(err)
	}
	pool := DefaultPool()
	for _, qt := range Types {
		if FewShot(qt) && len(pool[qt]) < 3 {
			t.Errorf("default pool has %d %s examples, want at least 3", len(pool[qt]), qt)
		}
		msgs, err := tm.Render(qt, "PASSAGE TEXT", pool.Draw(qt, 1, "d", "PASSAGE TEXT", 3, 2048))
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 2 || msgs[0].Role != "system" || !strings.Contains(msgs[1].Content, "Passage: PASSAGE TEXT") {
			t.Errorf("%s: %+v", qt, msgs)
		}
		if FewShot(qt) && strings.Count(msgs[1].Content, "Passage:") != 4 {
			t.Errorf("%s: want 3 examples and the passage:\n%s", qt, msgs[1].Content)
		}
		if v := tm.Version(qt); !strings.HasPrefix(v, qt+"@") {
			t.Errorf("version %q", v)
		}
	}
}

// TestTrimPairsLinear: stripping a 1 MB run of quotes (what a degenerate
// model can answer) takes linear time. Quadratic, as it was, it took about
// 25 s; linear, a few milliseconds: the bound of one second catches the
// regression with room for a loaded machine and the race detector.
func TestTrimPairsLinear(t *testing.T) {
	const n = 1 << 20
	cases := map[string]string{
		strings.Repeat(`"`, n): "",
		strings.Repeat(`"`, n/2) + "why" + strings.Repeat(`"`, n/2):   "why",
		strings.Repeat("“", n/6) + "why" + strings.Repeat("”", n/6):   "why",
		strings.Repeat(`*"`, n/4) + "why" + strings.Repeat(`"*`, n/4): "why",
		`"` + strings.Repeat("a ", n/2) + `b"?`:                       strings.Repeat("a ", n/2) + "b?",
	}
	for in, want := range cases {
		start := time.Now()
		got := trimPairs(in)
		// Linear work is ~0.2 s for 1 MiB (more under -race on a busy
		// machine); the quadratic version took over 10 minutes, so a 10 s
		// bound separates them without flaking on a loaded CI machine.
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("trimPairs of %d bytes (%.10q…) took %s: not linear", len(in), in, d)
		}
		if got != want {
			t.Errorf("trimPairs(%.10q…) = %.20q…, want %.20q…", in, got, want)
		}
	}
	if got := trimPairs(`"What is X"?`); got != "What is X?" {
		t.Errorf("quote closed before punctuation: %q", got)
	}
	if q, drop := Parse("questions", strings.Repeat(`"`, 64<<10), "a passage", ParseOptions{}); q != "" || drop == "" {
		t.Errorf("a run of quotes parsed as %q (%s)", q, drop)
	}
}

// BenchmarkTrimPairsQuotes: a run of quotes of growing length; ns/op grows
// linearly with the size (go test -bench TrimPairs ./prompts).
func BenchmarkTrimPairsQuotes(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 14, 1 << 18} {
		s := strings.Repeat(`"`, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for i := 0; i < b.N; i++ {
				trimPairs(s)
			}
		})
	}
}
