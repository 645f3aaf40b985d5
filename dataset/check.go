package dataset

import (
	"encoding/json"
	"fmt"
	"math"
)

// Checked is implemented by records with invariants that decoding alone
// does not ensure (parallel lists of one length, finite scores). A record
// stored by an earlier or broken synthq, or edited by hand, may decode and
// still break them: readers check before they index.
type Checked interface{ Check() error }

// BadRecordError is a stored record that decodes but fails its Check.
type BadRecordError struct {
	Key     string
	Problem error
}

func (e *BadRecordError) Error() string { return fmt.Sprintf("store record %s: %v", e.Key, e.Problem) }
func (e *BadRecordError) Unwrap() error { return e.Problem }

// Check reports a candidate list whose ranks do not pair with its
// candidates.
func (m *Mined) Check() error {
	if len(m.Ranks) != len(m.DocIDs) {
		return fmt.Errorf("%d candidates but %d ranks", len(m.DocIDs), len(m.Ranks))
	}
	return nil
}

// Check reports a labelled list whose candidates, ranks and raw scores are
// not of one length, or that holds a score that is not finite.
func (l *Labelled) Check() error {
	if len(l.Raw) != len(l.DocIDs) || len(l.Ranks) != len(l.DocIDs) {
		return fmt.Errorf("%d candidates, %d raw scores and %d ranks", len(l.DocIDs), len(l.Raw), len(l.Ranks))
	}
	if i := nonFinite(l.Raw); i >= 0 {
		return fmt.Errorf("raw score %d is %v", i, l.Raw[i])
	}
	return nil
}

// Check reports a hit list whose ids and scores are not of one length, or
// that holds a score that is not finite.
func (h *HitList) Check() error {
	if len(h.Scores) != len(h.IDs) {
		return fmt.Errorf("%d ids but %d scores", len(h.IDs), len(h.Scores))
	}
	if i := nonFinite(h.Scores); i >= 0 {
		return fmt.Errorf("score %d is %v", i, h.Scores[i])
	}
	return nil
}

func nonFinite(v []float32) int {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return i
		}
	}
	return -1
}

// DecodeChecked decodes the record stored under key into a T and checks
// it (Checked); a record that decodes but fails its check is a
// *BadRecordError naming the key and the problem.
func DecodeChecked[T any](key string, b []byte) (T, error) {
	var v T
	var err error
	if p, ok := any(&v).(*Passage); ok {
		err = DecodePassage(b, p) // the same result, without encoding/json for the usual form
	} else {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		return v, fmt.Errorf("store decode %q: %w", key, err)
	}
	if c, ok := any(&v).(Checked); ok {
		if err := c.Check(); err != nil {
			return v, &BadRecordError{Key: key, Problem: err}
		}
	}
	return v, nil
}
