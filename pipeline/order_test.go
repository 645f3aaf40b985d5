package pipeline

import (
	"context"
	"errors"
	"slices"
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

func TestAheadOf(t *testing.T) {
	run := func(items ...any) ([]int, error) {
		in := make(chan any, len(items))
		for _, it := range items {
			in <- it
		}
		close(in)
		var got []int
		err := AheadOf(func(ctx context.Context, env *Env, in <-chan int) error {
			for v := range in {
				got = append(got, v)
			}
			return nil
		})(context.Background(), &Env{}, in)
		return got, err
	}
	got, err := run(1, 2, 3)
	if err != nil || !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("typed items: %v, %v; want [1 2 3] in order", got, err)
	}
	if _, err := run(1, "two", 3); err == nil || !strings.Contains(err.Error(), "type string") {
		t.Fatalf("an item of another type: %v, want an error naming it", err)
	}
	stop := errors.New("teacher down")
	in := make(chan any, 3)
	in <- 1
	in <- 2
	in <- 3
	close(in)
	err = AheadOf(func(ctx context.Context, env *Env, in <-chan int) error {
		<-in
		return stop // returns early, items left
	})(context.Background(), &Env{}, in)
	if !errors.Is(err, stop) {
		t.Fatalf("ahead that stops early: %v, want its error", err)
	}
}
