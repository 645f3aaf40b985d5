package pipeline

import (
	"context"
	"strings"
	"testing"
)

func TestCheckOrder(t *testing.T) {
	corpus := Stage{Name: "corpus", Writes: []string{PrefixDoc}}
	gen := Stage{Name: "generate", Reads: []string{PrefixDoc}, Writes: []string{PrefixLLM}}
	filter := Stage{Name: "filter", Reads: []string{PrefixLLM}, Writes: []string{PrefixQuery}}
	for _, tc := range []struct {
		name   string
		stages []Stage
		want   string // "" for no error, else a part of the message
	}{
		{"in order", []Stage{corpus, gen, filter}, ""},
		{"one stage on a finished store", []Stage{filter}, ""},
		{"undeclared stages", []Stage{{Name: "a"}, {Name: "b"}}, ""},
		{"filter before generate", []Stage{corpus, filter, gen}, "stage filter reads llm/, which stage generate writes after it"},
		{"generate before corpus", []Stage{gen, corpus}, "stage generate reads doc/, which stage corpus writes after it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckOrder(tc.stages)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("CheckOrder: %v, want %q", err, tc.want)
			}
		})
	}
	// Run refuses a wrong order before running anything.
	ran := false
	bad := []Stage{{Name: "filter", Reads: []string{PrefixLLM}, Run: func(context.Context, *Env) error { ran = true; return nil }},
		{Name: "generate", Writes: []string{PrefixLLM}, Run: func(context.Context, *Env) error { ran = true; return nil }}}
	if err := Run(context.Background(), &Env{}, bad); err == nil || ran {
		t.Fatalf("Run of a wrong order: err %v, a stage ran: %v", err, ran)
	}
}
