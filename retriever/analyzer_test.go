package retriever

import (
	"context"
	"slices"
	"testing"
)

// Pairs from Porter's published vocabulary and the C reference implementation
// (which Lucene's PorterStemmer follows).
func TestPorterStem(t *testing.T) {
	cases := map[string]string{
		"caresses": "caress", "ponies": "poni", "ties": "ti", "caress": "caress", "cats": "cat",
		"feed": "feed", "agreed": "agre", "plastered": "plaster", "bled": "bled", "motoring": "motor",
		"sing": "sing", "conflated": "conflat", "troubled": "troubl", "sized": "size", "hopping": "hop",
		"tanned": "tan", "falling": "fall", "hissing": "hiss", "fizzed": "fizz", "failing": "fail",
		"filing": "file", "happy": "happi", "sky": "sky", "relational": "relat", "conditional": "condit",
		"rational": "ration", "valenci": "valenc", "digitizer": "digit", "conformabli": "conform",
		"radicalli": "radic", "differentli": "differ", "vileli": "vile", "analogousli": "analog",
		"vietnamization": "vietnam", "predication": "predic", "operator": "oper", "feudalism": "feudal",
		"decisiveness": "decis", "hopefulness": "hope", "callousness": "callous", "formaliti": "formal",
		"sensitiviti": "sensit", "sensibiliti": "sensibl", "triplicate": "triplic", "formative": "form",
		"formalize": "formal", "electriciti": "electr", "electrical": "electr", "hopeful": "hope",
		"goodness": "good", "revival": "reviv", "allowance": "allow", "inference": "infer",
		"airliner": "airlin", "gyroscopic": "gyroscop", "adjustable": "adjust", "defensible": "defens",
		"irritant": "irrit", "replacement": "replac", "adjustment": "adjust", "dependent": "depend",
		"adoption": "adopt", "homologou": "homolog", "communism": "commun", "activate": "activ",
		"angulariti": "angular", "homologous": "homolog", "effective": "effect", "bowdlerize": "bowdler",
		"probate": "probat", "rate": "rate", "cease": "ceas", "controll": "control", "roll": "roll",
		"generalizations": "gener", "oscillators": "oscil", "archaeology": "archaeolog", "is": "is", "a": "a",
	}
	for in, want := range cases {
		if got := porterStem(in); got != want {
			t.Errorf("porterStem(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAnalyzerLuceneEnglish(t *testing.T) {
	an := NewEnglishAnalyzer()
	cases := []struct {
		in   string
		want []string
	}{
		{"The patient's blood-pressure was 120.5 mmHg, e.g. in trials", []string{"patient", "blood", "pressur", "120.5", "mmhg", "e.g", "trial"}},
		{"It is not THE end; it's a start!", []string{"end", "start"}}, // it's -> it (possessive filter) -> stopword
		{"Ångström's café — naïve résumé", []string{"ångström", "café", "naïv", "résumé"}},
		{"COVID-19 vaccines (mRNA-1273)", []string{"covid", "19", "vaccin", "mrna", "1273"}},
	}
	for _, tc := range cases {
		if got := an.Analyze(nil, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Analyze(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSmallFloatNorms(t *testing.T) {
	// Lucene's SmallFloat.intToByte4: exact below 24, 4 significant bits above.
	for _, c := range []struct{ in, decoded int }{{0, 0}, {1, 1}, {23, 23}, {24, 24}, {25, 25}, {40, 40}, {41, 40}, {100, 96}, {1000, 984}} {
		if got := byte4ToInt(intToByte4(c.in)); got != c.decoded {
			t.Errorf("byte4ToInt(intToByte4(%d)) = %d, want %d", c.in, got, c.decoded)
		}
	}
	for i := 0; i < 256; i++ {
		if intToByte4(byte4ToInt(uint8(i))) != uint8(i) {
			t.Fatalf("norm byte %d does not round-trip", i)
		}
	}
}

func TestBM25Ranking(t *testing.T) {
	b := NewBM25Builder(nil, nil)
	b.Add("d1", "sync error on the desktop client")
	b.Add("d2", "password reset link expires after one hour")
	b.Add("d3", "sync error sync error 0x80070005 folder permission")
	b.Add("d4", "password reset link expires after one hour") // same text as d2: tie
	ix := b.Build()
	hits, err := ix.Search(context.Background(), "sync error folder", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 2 || hits[0].DocID != "d3" || hits[1].DocID != "d1" || hits[0].Rank != 1 || hits[0].Score <= hits[1].Score {
		t.Fatalf("hits = %+v", hits)
	}
	hits, _ = ix.Search(context.Background(), "password reset", 1)
	if len(hits) != 1 || hits[0].DocID != "d2" {
		t.Errorf("tie should rank the earlier passage first: %+v", hits)
	}
	if hits, _ := ix.Search(context.Background(), "the of and", 5); len(hits) != 0 {
		t.Errorf("stopword-only query matched %+v", hits)
	}
}
