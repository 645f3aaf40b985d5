// Package inspect tells what the store knows of one query slot (synthq
// inspect) and reads the funnel from passages to exported lists off the
// stage counts (synthq stats). It reads the store only.
package inspect

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
	"github.com/synthq/synthq/prompts"
	"github.com/synthq/synthq/stages"
)

// Story is everything the store knows about one query slot, from the
// passage to the exported list.
type Story struct {
	QID        string            `json:"qid"`
	Passage    dataset.Passage   `json:"passage"`
	Prompt     []prompts.Message `json:"prompt"`
	Answer     *dataset.Answer   `json:"answer,omitempty"`
	Failure    *dataset.Failure  `json:"failure,omitempty"`
	Query      *dataset.Query    `json:"query,omitempty"`
	Candidates []Candidate       `json:"candidates,omitempty"`
	Outcome    string            `json:"outcome"`
}

// Candidate is one mined passage of the query with its scores.
type Candidate struct {
	DocID    string   `json:"docid"`
	Rank     int32    `json:"retriever_rank"` // 0: added, not retrieved
	Raw      *float32 `json:"teacher_raw,omitempty"`
	Score    *float32 `json:"teacher_score,omitempty"`
	Exported int      `json:"exported_position,omitempty"` // 1-based position in the exported list; 0: not in it
	Source   bool     `json:"source,omitempty"`
}

// Slot tells the story of one query slot: its passage, the prompt that
// was (or would be) sent, the raw answer, the parsed query, the candidates
// with retriever ranks and teacher scores, and why it was kept or dropped.
// The targets come from the last export (meta/targets) or, failing that,
// are computed from the store (three scans of the labelled table).
func Slot(ctx context.Context, st *pipeline.Store, cfg *pipeline.Config, qid string) (*Story, error) {
	docID, qtype, sample, err := dataset.SplitQID(qid)
	if err != nil {
		return nil, err
	}
	s := &Story{QID: qid}
	if ok, err := st.GetJSON(dataset.DocKey(docID), &s.Passage); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("passage %q is not in the store", docID)
	}
	if why, err := notAsked(st, cfg, docID, qtype, sample); err != nil {
		return nil, err
	} else if why != "" {
		s.Outcome = "not asked by this run: " + why
		return s, nil
	}
	req, fp, err := stages.SlotRequest(cfg, docID, s.Passage, qtype, sample)
	if err != nil {
		return nil, err
	}
	s.Prompt = req.Messages
	var ans dataset.Answer
	if ok, err := st.GetJSON(dataset.AnswerKey(fp), &ans); err != nil {
		return nil, err
	} else if ok {
		s.Answer = &ans
	}
	var fail dataset.Failure
	if ok, err := st.GetJSON(dataset.FailKey(fp), &fail); err != nil {
		return nil, err
	} else if ok {
		s.Failure = &fail
	}
	var q dataset.Query
	if ok, err := st.GetJSON(dataset.QueryKey(qid), &q); err != nil {
		return nil, err
	} else if !ok {
		s.Outcome = "not generated yet"
		if s.Failure != nil {
			s.Outcome = "failed at generate: " + s.Failure.Reason
		}
		return s, nil
	}
	s.Query = &q
	if q.Drop != "" {
		s.Outcome = "dropped at filter: " + q.Drop
		return s, nil
	}
	var m dataset.Mined
	if ok, err := st.GetJSON(dataset.MinedKey(qid), &m); err != nil {
		return nil, err
	} else if !ok {
		s.Outcome = "not mined yet"
		return s, nil
	}
	if err := m.Check(); err != nil {
		return nil, &dataset.BadRecordError{Key: dataset.MinedKey(qid), Problem: err}
	}
	for i, id := range m.DocIDs {
		s.Candidates = append(s.Candidates, Candidate{DocID: id, Rank: m.Ranks[i], Source: id == docID})
	}
	if m.Drop != "" {
		s.Outcome = "dropped at mine: " + m.Drop
		return s, nil
	}
	var l dataset.Labelled
	if ok, err := st.GetJSON(dataset.LabelKey(qid), &l); err != nil {
		return nil, err
	} else if !ok {
		s.Outcome = "not labelled yet"
		if ok, _ := st.Has(dataset.FailKey(dataset.ScoreKey(dataset.TeacherFingerprint(cfg), m.Query))); ok {
			s.Outcome = "failed at label (see synthq stats)"
		}
		return s, nil
	}
	if err := l.Check(); err != nil {
		return nil, &dataset.BadRecordError{Key: dataset.LabelKey(qid), Problem: err}
	}
	var t dataset.Targets
	if ok, err := st.GetJSON(dataset.MetaTargets, &t); err != nil {
		return nil, err
	} else if !ok {
		tp, err := dataset.ComputeTargets(ctx, st, cfg)
		if err != nil {
			return nil, err
		}
		t = *tp
	}
	if t.Threshold != nil {
		t.MinTop = *t.Threshold
	} else {
		t.MinTop = math.Inf(-1)
	}
	pos := map[int]int{}
	idx, drop := t.Row(&l, cfg)
	for p, i := range idx {
		pos[i] = p + 1
	}
	for i := range s.Candidates {
		raw := l.Raw[i]
		norm := t.Normalise(raw, cfg)
		s.Candidates[i].Raw, s.Candidates[i].Score, s.Candidates[i].Exported = &raw, &norm, pos[i]
	}
	if drop != "" {
		s.Outcome = "dropped at export: " + drop
	} else {
		s.Outcome = fmt.Sprintf("exported: a list of %d passages", len(idx))
	}
	return s, nil
}

// notAsked says why the run with settings cfg never asks for query slot
// (docID, qtype, sample), or "" if it does.
func notAsked(st *pipeline.Store, cfg *pipeline.Config, docID, qtype string, sample int) (string, error) {
	switch {
	case !slices.Contains(cfg.QueryTypes, qtype):
		return fmt.Sprintf("its --query-types are %s, not %s", strings.Join(cfg.QueryTypes, ","), qtype), nil
	case sample < 0 || sample >= cfg.QueriesPerType:
		return fmt.Sprintf("--queries-per-type %d asks samples 0 to %d of each passage and type, not %d",
			cfg.QueriesPerType, cfg.QueriesPerType-1, sample), nil
	case !cfg.InShard(docID):
		return fmt.Sprintf("the passage is in another shard than --shard %s", cfg.Shard), nil
	}
	sel, ok, err := stages.StoredSelection(st, cfg)
	if err != nil || !ok {
		return "", err
	}
	switch sel.Skip(docID) {
	case stages.SkipDuplicate:
		return fmt.Sprintf("the passage duplicates %q, which is asked instead (--dedup %s)", sel.Root(docID), cfg.Dedup), nil
	case stages.SkipHoldout:
		return "the passage is held out (--holdout)", nil
	case stages.SkipNotSampled:
		return fmt.Sprintf("the passage is outside the --max-passages %d sample", cfg.MaxPassages), nil
	}
	return "", nil
}

// FunnelStep is one step of the funnel from passages to exported lists.
type FunnelStep struct {
	Step  string `json:"step"`
	Count int64  `json:"count"`
}

// Funnel reads the path from passages to exported lists off the stage
// counts: passages → passages asked about → query slots → answered → parsed → unique → through the
// round trip → labelled → kept by the teacher filters → exported.
func Funnel(stats map[string]pipeline.StageStats) []FunnelStep {
	c := func(stage, name string) int64 { return stats[stage].Counts[name] }
	f := func(name string) int64 { return c("filter", name) }
	answered := f("answers")
	exported := c("export", "rows_train") + c("export", "rows_dev")
	return []FunnelStep{
		{"passages", c("corpus", "passages")},
		{"passages asked about (this shard; duplicates, held-out and unsampled passages removed)", f("passages_asked")},
		{"query slots", answered + f("drop_"+dataset.DropLLMFailed) + f("drop_"+dataset.DropNotGenerated)},
		{"answered by the LLM", answered},
		{"parsed", f("kept") + f("drop_"+dataset.DropDuplicatePassage) + f("drop_"+dataset.DropDuplicateCorpus) + f("drop_"+dataset.DropDuplicateAcrossShards)},
		{"unique", f("kept")},
		{"through the round trip", c("mine", "kept") + c("mine", "drop_"+dataset.DropFewCandidates)},
		{"with at least --min-candidates candidates", c("mine", "kept")},
		{"labelled by the teacher", c("label", "labelled")},
		{"kept by the teacher filters", exported + c("export", "drop_shorter_than_list_size")},
		{"exported", exported},
	}
}
