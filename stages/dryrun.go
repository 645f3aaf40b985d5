package stages

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/internal/tokens"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/prompts"
)

// TokenCounter counts the tokens of a text (a real tokenizer, or nil for
// the estimate of tokens.Estimate). A counter that can fail also has an
// Err() error method, checked after each prompt (optional interface).
type TokenCounter interface {
	Count(text string) int
	Name() string
}

// ChatOverhead is the tokens a chat template adds around the messages, as
// Llama 3.1's template does: <|begin_of_text|>, per message
// <|start_header_id|> role <|end_header_id|> "\n\n" … <|eot_id|> (5), the
// assistant header that opens the answer (4), and the "Cutting Knowledge
// Date … Today Date …" lines Llama 3.1 puts in the system turn (about 20).
func ChatOverhead(messages int) int { return 1 + 5*messages + 4 + 20 }

// DryRunReport is what a generate run would send, computed without a server.
type DryRunReport struct {
	Passages       int64                        `json:"passages"`
	Slots          int64                        `json:"answers_wanted"`
	Stored         int64                        `json:"answers_stored"`
	Failed         int64                        `json:"answers_failed"`
	ToAsk          int64                        `json:"answers_to_ask"`
	Requests       int64                        `json:"requests"`
	PromptTokens   int64                        `json:"prompt_tokens"`
	CompletionMax  int64                        `json:"completion_tokens_max"`
	CompletionTyp  int64                        `json:"completion_tokens_typical"`
	Counter        string                       `json:"token_counter"`
	CostMax        float64                      `json:"cost_max"`
	CostTypical    float64                      `json:"cost_typical"`
	SamplePrompts  map[string][]prompts.Message `json:"sample_prompts"`
	sampleFromDocs map[string]string
}

// TypicalQueryTokens is the completion length assumed for a typical answer
// (a query of 10–15 words and an end token); MaxTokens bounds it.
const TypicalQueryTokens = 20

// DryRun renders every prompt generate would send for the passages in the
// store, sends nothing, and reports the requests, tokens and cost of the
// slots not answered yet (recorded failures count only with RetryFailed).
// It costs one template render per slot and one tokenizer pass per request.
func DryRun(ctx context.Context, st *pipeline.Store, cfg *pipeline.Config, tok TokenCounter) (*DryRunReport, error) {
	plan, err := newGenPlan(cfg)
	if err != nil {
		return nil, err
	}
	r := &DryRunReport{Counter: "estimate: 4 bytes a token (tokens.Estimate)",
		SamplePrompts: map[string][]prompts.Message{}, sampleFromDocs: map[string]string{}}
	count := tokens.Estimate
	if tok != nil {
		count, r.Counter = tok.Count, tok.Name()
	}
	seen := map[string]bool{}
	_, err = forEachGroup(ctx, st, cfg, plan, func(docID, qt string, slots []slot) error {
		if !seen[docID] {
			seen[docID] = true
			r.Passages++
		}
		if _, ok := r.SamplePrompts[qt]; !ok {
			r.SamplePrompts[qt] = slots[0].req.Messages
			r.sampleFromDocs[qt] = docID
		}
		var todo int64
		for _, sl := range slots {
			r.Slots++
			if ok, err := st.Has(dataset.AnswerKey(sl.fp)); err != nil {
				return err
			} else if ok {
				r.Stored++
				continue
			}
			if ok, err := st.Has(dataset.FailKey(sl.fp)); err != nil {
				return err
			} else if ok {
				r.Failed++
				if !cfg.RetryFailed {
					continue
				}
			}
			todo++
		}
		if todo == 0 {
			return nil
		}
		reqs := todo
		if todo > 1 && !cfg.NoN {
			reqs = 1
		}
		prompt := int64(ChatOverhead(len(slots[0].req.Messages)))
		for _, m := range slots[0].req.Messages {
			prompt += int64(count(m.Content))
		}
		if f, ok := tok.(interface{ Err() error }); ok && f.Err() != nil {
			// A tokenizer that can fail (a user's pattern timing out) says so
			// through Err; stop at the first failure, not after a slow corpus.
			return f.Err()
		}
		r.ToAsk += todo
		r.Requests += reqs
		r.PromptTokens += reqs * prompt
		r.CompletionMax += todo * int64(cfg.MaxTokens)
		r.CompletionTyp += todo * int64(min(cfg.MaxTokens, TypicalQueryTokens))
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.CostMax = cfg.Cost(r.PromptTokens, r.CompletionMax)
	r.CostTypical = cfg.Cost(r.PromptTokens, r.CompletionTyp)
	return r, nil
}

// Print writes the report and one sample prompt per type.
func (r *DryRunReport) Print(w io.Writer, cfg *pipeline.Config) {
	fmt.Fprintf(w, "dry run: no server was called\n\n")
	for _, qt := range cfg.QueryTypes {
		msgs, ok := r.SamplePrompts[qt]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "── sample prompt: %s (passage %s) ──\n", qt, r.sampleFromDocs[qt])
		for _, m := range msgs {
			fmt.Fprintf(w, "[%s]\n%s\n", m.Role, strings.TrimRight(m.Content, "\n"))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "passages            %d × %d types × %d per type = %d answers (%d stored, %d failed before)\n",
		r.Passages, len(cfg.QueryTypes), cfg.QueriesPerType, r.Slots, r.Stored, r.Failed)
	fmt.Fprintf(w, "to ask              %d answers in %d requests\n", r.ToAsk, r.Requests)
	fmt.Fprintf(w, "prompt tokens       %d (%s)\n", r.PromptTokens, r.Counter)
	fmt.Fprintf(w, "completion tokens   ≤ %d (--max-tokens %d per answer); typically ~%d (%d per query)\n",
		r.CompletionMax, cfg.MaxTokens, r.CompletionTyp, min(cfg.MaxTokens, TypicalQueryTokens))
	if cfg.PriceInput > 0 || cfg.PriceOutput > 0 {
		fmt.Fprintf(w, "cost                ≤ %.4f, typically ~%.4f (at %g input / %g output per 1M tokens)\n",
			r.CostMax, r.CostTypical, cfg.PriceInput, cfg.PriceOutput)
	} else {
		fmt.Fprintf(w, "cost                give --price-input and --price-output (per 1M tokens) to see it\n")
	}
}
