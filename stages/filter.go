package stages

import (
	"context"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/llm"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/prompts"
)

// FilterStage derives the query table (q/<qid>) from the stored answers: it
// parses each answer (a pure function, so a parser fix needs no request),
// drops what the parser rejects and normalised duplicates within a passage
// and across the corpus (the first slot in passage-id order wins), and counts
// every drop by reason. The table is derived again on every run and
// rewritten in place (pipeline.Table: only changed records are written).
func FilterStage() pipeline.Stage {
	return pipeline.Stage{Name: "filter", Doc: "parse answers, drop bad and duplicate queries", Run: runFilter,
		Reads: []string{pipeline.PrefixDoc, pipeline.PrefixLLM}, Writes: []string{pipeline.PrefixQuery}}
}

func runFilter(ctx context.Context, env *pipeline.Env) error {
	cfg, st := env.Config, env.Store
	c := env.Counters("filter")
	plan, err := newGenPlan(cfg)
	if err != nil {
		return err
	}
	table := st.Table(pipeline.PrefixQuery)
	defer table.Cancel()
	opts := prompts.ParseOptions{MaxWords: cfg.MaxQueryWords, MaxCopiedWords: cfg.MaxCopiedWords}
	seen := newQuerySeen()
	bar := env.Progress.Start("filter", 0)
	defer bar.Finish()
	passages := 0
	skipped, err := forEachSlot(ctx, st, cfg, plan, func(docID, qt string, s int, req llm.Request, fp string) error {
		if seen.passage(docID) {
			passages++
		}
		q := dataset.Query{DocID: docID, Type: qt, Sample: s, GenFP: fp}
		var ans dataset.Answer
		ok, err := st.GetJSON(dataset.AnswerKey(fp), &ans)
		if err != nil {
			return err
		}
		switch {
		case !ok:
			q.Drop = dataset.DropNotGenerated
			if failed, err := st.Has(dataset.FailKey(fp)); err != nil {
				return err
			} else if failed {
				q.Drop = dataset.DropLLMFailed
			}
		default:
			c.Add("answers", 1)
			c.Add("prompt_tokens", int64(ans.PromptTokens))
			c.Add("completion_tokens", int64(ans.CompletionTokens))
			q.Text, q.Drop = prompts.Parse(qt, ans.Content, req.Passage, opts)
		}
		if q.Drop == "" {
			q.Drop = seen.query(prompts.Normalize(q.Text))
		}
		if q.Drop != "" {
			c.Add("drop_"+q.Drop, 1)
		} else {
			c.Add("kept", 1)
			c.Add("kept_"+qt, 1)
		}
		bar.Add(1)
		return table.PutJSON(dataset.QID(docID, qt, s), q)
	})
	if err != nil {
		return err
	}
	c.Add("passages_asked", int64(passages))
	for why, n := range skipped {
		c.Add("passages_"+why, n)
	}
	return table.Finish(ctx)
}

// querySeen finds duplicate queries as the filter streams the slots passage
// by passage: a query whose normalised text an earlier passage asked is a
// duplicate in the corpus; one this passage already asked, in the passage.
// Memory: one 64-bit hash per kept query in a hashSet (11–21 bytes each)
// plus the current passage's hashes; nothing per passage.
type querySeen struct {
	corpus  hashSet             // kept queries of earlier passages
	doc     string              // the current passage
	current map[uint64]struct{} // kept queries of the current passage
}

func newQuerySeen() *querySeen {
	return &querySeen{current: map[uint64]struct{}{}}
}

// passage moves to docID and reports whether it is a new passage. Slots
// come passage by passage (forEachSlot), so each passage starts once.
func (s *querySeen) passage(docID string) bool {
	if docID == s.doc && len(s.doc) > 0 {
		return false
	}
	for h := range s.current {
		s.corpus.add(h)
	}
	clear(s.current)
	s.doc = docID
	return true
}

// query returns the drop reason of a kept query's normalised text ("" when
// it is the first of its kind) and remembers it.
func (s *querySeen) query(norm string) string {
	h := pipeline.Hash64(norm)
	if s.corpus.has(h) {
		return dataset.DropDuplicateCorpus
	}
	if _, dup := s.current[h]; dup {
		return dataset.DropDuplicatePassage
	}
	s.current[h] = struct{}{}
	return ""
}
