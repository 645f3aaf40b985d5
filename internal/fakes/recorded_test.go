package fakes

import (
	"encoding/json"
	"testing"
)

// The recorded answers are there and are JSON once the elided fields read as
// null: the fuzz targets seeded from them start from real answers.
func TestRecordedAnswers(t *testing.T) {
	for prefix, want := range map[string]int{"chat": 3, "embedding": 1, "rerank": 3} {
		got := RecordedAnswers(prefix)
		if len(got) < want {
			t.Errorf("%s: %d recorded 2xx answers, want at least %d", prefix, len(got), want)
		}
		for _, b := range got {
			if !json.Valid(b) {
				t.Errorf("%s: not JSON: %.200s", prefix, b)
			}
		}
	}
}
