package dataset

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
)

// DecodePassage gives what json.Unmarshal gives, on what synthq writes and
// on every other form (escapes, reordered or missing fields, numbers out of
// range, invalid UTF-8, spaces): the fast path only ever declines.
func TestDecodePassageMatchesJSON(t *testing.T) {
	inputs := []string{
		`{"title":"T","text":"body","line":3,"hash":18446744073709551615}`,
		`{"text":"body","line":0,"hash":0}`,
		`{"title":"","text":"","line":-7,"hash":1}`,
		`{"text":"a \"quoted\" word","line":1,"hash":2}`,
		`{"text":"tab\there","line":1,"hash":2}`,
		`{"text":"\u003cb\u003e","line":1,"hash":2}`,
		"{\"text\":\"raw\x01control\",\"line\":1,\"hash\":2}",
		"{\"text\":\"bad \xff utf8\",\"line\":1,\"hash\":2}",
		`{"text":"été ß 漢字","line":12,"hash":99}`,
		`{"line":1,"text":"reordered","hash":2}`,
		`{"text":"x","line":1}`,
		`{"text":"x","line":01,"hash":2}`,
		`{"text":"x","line":-0,"hash":2}`,
		`{"text":"x","line":1.5,"hash":2}`,
		`{"text":"x","line":1,"hash":-2}`,
		`{"text":"x","line":1,"hash":18446744073709551616}`,
		`{"text":"x","line":99999999999999999999,"hash":2}`,
		`{"text":"x","line":1,"hash":2,"extra":true}`,
		`{"text":"x","line":1,"hash":2} `,
		`{ "text":"x","line":1,"hash":2}`,
		`{"text":"x","line":1,"hash":2`,
		`{"text":"x`,
		`{"title":"T"}`,
		`null`,
		``,
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		p := Passage{Title: randText(rng), Text: randText(rng), Line: rng.IntN(1e6) - 10, Hash: rng.Uint64()}
		b, _ := json.Marshal(p)
		inputs = append(inputs, string(b))
		if len(b) > 2 {
			inputs = append(inputs, string(b[:rng.IntN(len(b))]))
		}
	}
	for _, in := range inputs {
		var want Passage
		werr := json.Unmarshal([]byte(in), &want)
		got := Passage{Title: "stale", Line: 42}
		gerr := DecodePassage([]byte(in), &got)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("%q: error %v, json.Unmarshal's %v", in, gerr, werr)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %+v, json.Unmarshal gives %+v", in, got, want)
		}
	}
	// The form synthq writes takes the fast path.
	b, _ := json.Marshal(Passage{Title: "A title", Text: "Some text, with été.", Line: 7, Hash: 12345})
	if _, ok := fastPassage(b); !ok {
		t.Errorf("fast path declined %s", b)
	}
}

func randText(rng *rand.Rand) string {
	alphabet := []rune("ab zé漢\"\\<&\t\n\x01")
	r := make([]rune, rng.IntN(12))
	for i := range r {
		r[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(r)
}

func BenchmarkDecodePassage(b *testing.B) {
	p := Passage{Title: "A title of some words", Text: string(make([]byte, 0)) + "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt in culpa qui officia deserunt mollit anim id est laborum", Line: 123456, Hash: 987654321987}
	v, _ := json.Marshal(p)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			var q Passage
			DecodePassage(v, &q)
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			var q Passage
			json.Unmarshal(v, &q)
		}
	})
}
