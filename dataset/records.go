package dataset

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/synthq/synthq/internal/redact"
	"github.com/synthq/synthq/pipeline"
)

// Passage is a stored corpus passage (doc/<id>).
type Passage struct {
	Title string `json:"title,omitempty"`
	Text  string `json:"text"`
	Line  int    `json:"line"`
	// Hash is the hash of the normalised title+text: equal hashes mark
	// duplicate passages and a changed corpus.
	Hash uint64 `json:"hash"`
}

// Full is the passage as the retriever and the teacher read it (title, then text).
func (p Passage) Full() string {
	if p.Title == "" {
		return p.Text
	}
	return p.Title + " " + p.Text
}

// Answer is a stored LLM answer (llm/<fingerprint>): cached, paid-for work.
type Answer struct {
	Content          string `json:"content"`
	FinishReason     string `json:"finish_reason,omitempty"`
	Model            string `json:"model,omitempty"`
	PromptTokens     int    `json:"prompt_tokens"`
	CompletionTokens int    `json:"completion_tokens"`
	// CompletionEstimated: the server counted one choice of an n-request
	// (llama.cpp); CompletionTokens is the estimate of every choice
	// (UnderReportedCompletion).
	CompletionEstimated bool `json:"completion_estimated,omitempty"`
	// PromptTruncated: the server reported far fewer prompt tokens than were
	// sent (PromptTruncated): it cut the prompt silently.
	PromptTruncated bool `json:"prompt_truncated,omitempty"`
}

// Failure is a stored permanent failure of a unit of work (fail/<fingerprint>).
type Failure struct {
	Stage  string `json:"stage"`
	Item   string `json:"item"`
	Reason string `json:"reason"` // the server's words when it first failed; never overwritten
	// Settings is the FailureScope of the last run that failed this item or
	// skipped it as failed. Only failures of the current settings count in
	// exit status 3, the manifest and stats; one recorded under other
	// settings (an earlier teacher, another window) neither counts nor, its
	// key being of other settings, blocks the item.
	Settings string `json:"settings,omitempty"`
}

// EarlierFailure reports whether the item of key is recorded as failed, and
// stamps the record with this run's scope (its reason unchanged), so that
// it counts as a failure of the current settings.
func EarlierFailure(st *pipeline.Store, key, scope string) (bool, error) {
	var f Failure
	ok, err := st.GetJSON(key, &f)
	if err != nil || !ok {
		return false, err
	}
	if f.Settings != scope {
		f.Settings = scope
		if err := st.PutJSON(key, f); err != nil {
			return true, err
		}
	}
	return true, nil
}

// RecordFailure stores f under key; a failure already recorded there keeps
// its first reason (only its Settings stamp changes), so a re-run that meets
// the same refusal, or a stored one, never replaces the server's words.
func RecordFailure(st *pipeline.Store, key string, f Failure) error {
	f.Reason = redact.Text(f.Reason)
	var old Failure
	if ok, err := st.GetJSON(key, &old); err != nil {
		return err
	} else if ok && old.Reason != "" {
		if old.Settings == f.Settings {
			return nil
		}
		f.Reason = old.Reason
	}
	return st.PutJSON(key, f)
}

// Failures returns the recorded failures of the settings whose FailureScope
// is scope, and how many others the store holds (of other settings).
func Failures(st *pipeline.Store, scope string) (current []Failure, others int, err error) {
	err = ScanJSON(st, pipeline.PrefixFail, func(_ string, f Failure) error {
		if f.Settings == scope {
			current = append(current, f)
		} else {
			others++
		}
		return nil
	})
	return current, others, err
}

// Query is a derived query record (q/<qid>).
type Query struct {
	DocID  string `json:"docid"`
	Type   string `json:"type"`
	Sample int    `json:"sample"`
	Text   string `json:"text,omitempty"`
	Drop   string `json:"drop,omitempty"`
	GenFP  string `json:"gen_fp"`
}

// Mined is a derived candidate list (m/<qid>).
type Mined struct {
	DocID  string   `json:"docid"`
	Type   string   `json:"type"`
	Query  string   `json:"query"`
	DocIDs []string `json:"docids,omitempty"`
	Ranks  []int32  `json:"ranks,omitempty"` // 1-based first-pass rank; 0: added, not retrieved
	Drop   string   `json:"drop,omitempty"`
}

// Labelled is a derived scored list (l/<qid>): candidates in first-pass order
// with the teacher's raw scores.
type Labelled struct {
	DocID  string    `json:"docid"`
	Type   string    `json:"type"`
	Query  string    `json:"query"`
	DocIDs []string  `json:"docids"`
	Ranks  []int32   `json:"ranks"`
	Raw    []float32 `json:"raw"`
}

// HitList is a stored retrieval result (hits/<fingerprint>).
type HitList struct {
	IDs    []string  `json:"ids"`
	Scores []float32 `json:"scores"`
}

// CorpusMeta is what the store remembers of the corpus it was made from
// (meta/corpus).
type CorpusMeta struct {
	SHA256   string `json:"sha256"`
	Passages int    `json:"passages"`
}

// QID names the query slot (passage, type, sample): "<docid>:<type>:<n>".
func QID(docID, qtype string, sample int) string {
	return docID + ":" + qtype + ":" + strconv.Itoa(sample)
}

// SplitQID splits "<docid>:<type>:<n>" (the passage id may hold colons).
func SplitQID(qid string) (docID, qtype string, sample int, err error) {
	i := strings.LastIndex(qid, ":")
	j := -1
	if i > 0 {
		j = strings.LastIndex(qid[:i], ":")
	}
	if j <= 0 {
		return "", "", 0, fmt.Errorf("qid %q: want <docid>:<type>:<n>", qid)
	}
	sample, err = strconv.Atoi(qid[i+1:])
	if err != nil {
		return "", "", 0, fmt.Errorf("qid %q: sample %q is not a number", qid, qid[i+1:])
	}
	return qid[:j], qid[j+1 : i], sample, nil
}
