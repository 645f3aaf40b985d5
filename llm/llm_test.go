package llm

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/synthq/synthq/internal/fakes"
	"github.com/synthq/synthq/internal/httpx"
	"github.com/synthq/synthq/prompts"
)

const model = "m"

func request(passage string) Request {
	return Request{Messages: []prompts.Message{{Role: "user", Content: "Passage: " + passage + "\nQuestion:"}}, MaxTokens: 50, Seed: 1}
}

// TestHostileChatAnswers: against the hostile stand-in, a chat answer of
// the wrong shape ({"choices":"oops"}), not JSON, over its cap (a 1 GiB
// answer, not read past about 1 MiB) or with absurd token counts is asked
// again and then fails its item (an *ItemError: the run goes on) while the
// server answers others well; when no answer is ever well formed the run's
// LLM server is misconfigured: a Config fault with the server's words and
// a hint. None is an endpoint fault that would stop the run.
func TestHostileChatAnswers(t *testing.T) {
	modes := []string{"malformed", "html", "truncated", "huge", "absurd"}
	f := fakes.NewLLM(model, func(f *fakes.LLM) {
		f.Fault = func(_ int64, body []byte) string {
			for _, m := range modes {
				if strings.Contains(string(body), "mode-"+m) {
					return m
				}
			}
			return ""
		}
	})
	defer f.Close()
	hc := httpx.New(&httpx.Options{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Timeout: 20 * time.Second,
		Role: "llm", Endpoints: []string{f.URL()}})
	g := NewOpenAI(f.URL(), model, "", hc)
	ctx := context.Background()
	if _, err := g.Generate(ctx, request("a plain passage about sync errors")); err != nil {
		t.Fatal(err)
	}
	for _, m := range modes {
		_, err := g.Generate(ctx, request("a passage with mode-"+m))
		var ie *ItemError
		if !errors.As(err, &ie) || httpx.KindOf(err) != httpx.Item {
			t.Errorf("%s: err %v, want an item error", m, err)
		}
	}
	if s := f.HugeSent.Load(); s > 200<<20 {
		t.Errorf("the huge answers wrote %d MiB before the client hung up", s>>20)
	}

	// Nothing ever well formed: a misconfiguration.
	bad := fakes.NewLLM(model, func(f *fakes.LLM) { f.Fault = func(int64, []byte) string { return "malformed" } })
	defer bad.Close()
	hc = httpx.New(&httpx.Options{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Role: "llm", Endpoints: []string{bad.URL()}})
	_, err := NewOpenAI(bad.URL(), model, "", hc).Generate(ctx, request("x"))
	if httpx.KindOf(err) != httpx.Config || !strings.Contains(err.Error(), `{"choices":"oops"}`) || !strings.Contains(err.Error(), "--llm-url") {
		t.Errorf("every answer malformed: err %v, want a Config fault with the server's words and a hint", err)
	}

	// With a Doer that does not check answers, go-openai's decoding error
	// is the item's, not an outage.
	_, err = NewOpenAI(bad.URL(), model, "", http.DefaultClient).Generate(ctx, request("x"))
	var ie *ItemError
	if !errors.As(err, &ie) {
		t.Errorf("malformed answer through a plain client: %v, want an item error", err)
	}
}

func TestAnswerLimit(t *testing.T) {
	if got := AnswerLimit(1, 50); got != 1<<20+50*256 {
		t.Errorf("AnswerLimit(1, 50) = %d", got)
	}
	if AnswerLimit(4, 0) <= AnswerLimit(4, 4096) {
		t.Error("no max_tokens must allow a long answer")
	}
}
