package stages

import (
	"context"

	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/prompts"
)

// Query drop reasons set by the filter stage (besides the parser's).
const (
	DropNotGenerated     = "not_generated"
	DropLLMFailed        = "llm_failed"
	DropDuplicatePassage = "duplicate_in_passage"
	DropDuplicateCorpus  = "duplicate_in_corpus"
)

// FilterStage derives the query table (q/<qid>) from the stored answers: it
// parses each answer (a pure function, so a parser fix needs no request),
// drops what the parser rejects and normalised duplicates within a passage
// and across the corpus (the first slot in passage-id order wins), and counts
// every drop by reason. The table is rebuilt on every run.
func FilterStage() pipeline.Stage {
	return pipeline.Stage{Name: "filter", Doc: "parse answers, drop bad and duplicate queries", Run: runFilter}
}

func runFilter(ctx context.Context, env *pipeline.Env) error {
	cfg, st := env.Config, env.Store
	c := env.Counters("filter")
	plan, err := newGenPlan(cfg)
	if err != nil {
		return err
	}
	if err := st.DropPrefix(pipeline.PrefixQuery); err != nil {
		return err
	}
	opts := prompts.ParseOptions{MaxWords: cfg.MaxQueryWords, MaxCopiedWords: cfg.MaxCopiedWords}
	seen := map[uint64]string{} // normalised query hash -> docid of first holder
	batch := st.NewBatch()
	defer batch.Cancel()
	bar := env.Progress.Start("filter", 0)
	defer bar.Finish()
	passages := map[string]bool{}
	skipped, err := forEachSlot(ctx, st, cfg, plan, func(docID, qt string, s int, req GenRequest, fp string) error {
		passages[docID] = true
		q := Query{DocID: docID, Type: qt, Sample: s, GenFP: fp}
		var ans Answer
		ok, err := st.GetJSON(pipeline.PrefixLLM+fp, &ans)
		if err != nil {
			return err
		}
		switch {
		case !ok:
			q.Drop = DropNotGenerated
			if failed, err := st.Has(failKey(fp)); err != nil {
				return err
			} else if failed {
				q.Drop = DropLLMFailed
			}
		default:
			c.Add("answers", 1)
			c.Add("prompt_tokens", int64(ans.PromptTokens))
			c.Add("completion_tokens", int64(ans.CompletionTokens))
			q.Text, q.Drop = prompts.Parse(qt, ans.Content, req.Passage, opts)
		}
		if q.Drop == "" {
			h := pipeline.Hash64(prompts.Normalize(q.Text))
			if first, dup := seen[h]; dup {
				q.Drop = DropDuplicateCorpus
				if first == docID {
					q.Drop = DropDuplicatePassage
				}
			} else {
				seen[h] = docID
			}
		}
		if q.Drop != "" {
			c.Add("drop_"+q.Drop, 1)
		} else {
			c.Add("kept", 1)
			c.Add("kept_"+qt, 1)
		}
		bar.Add(1)
		return batch.PutJSON(pipeline.PrefixQuery+QID(docID, qt, s), q)
	})
	if err != nil {
		return err
	}
	c.Add("passages_asked", int64(len(passages)))
	for why, n := range skipped {
		c.Add("passages_"+why, n)
	}
	return batch.Flush()
}
