package pipeline

import (
	"fmt"
	"math"

	"github.com/synthq/synthq/internal/httpx"
)

// validateFinite refuses NaN and ±Inf in every number setting, naming its
// flag: they parse as numbers and pass every range check unnoticed
// (`--dev-fraction NaN` cut the split at a nonsense index).
func (c *Config) validateFinite() error {
	for _, f := range []struct {
		flag string
		v    float64
	}{
		{"temperature", c.Temperature}, {"top-p", c.TopP}, {"rpm", c.RPM}, {"tpm", c.TPM},
		{"teacher-rpm", c.TeacherRPM}, {"price-input", c.PriceInput}, {"price-output", c.PriceOutput},
		{"dedup-threshold", c.DedupThreshold}, {"bm25-k1", c.BM25K1}, {"bm25-b", c.BM25B},
		{"min-top-percentile", c.MinTopPercentile}, {"dev-fraction", c.DevFraction}, {"tolerate-failed", c.TolerateFailed},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("--%s must be a finite number, got %g", f.flag, f.v)
		}
	}
	return nil
}

// validateURLs checks every server URL (all of them, not only the first
// of a role) with httpx.CheckURL: the error names the flag, the URL
// redacted and the reason, never a password.
func (c *Config) validateURLs() error {
	for _, r := range []struct {
		flag string
		urls []string
	}{{"llm-url", c.LLMURLs}, {"teacher-url", c.TeacherURLs}, {"embed-url", c.EmbedURLs}} {
		for i, u := range r.urls {
			if err := httpx.CheckURL(u); err != nil {
				which := ""
				if len(r.urls) > 1 {
					which = fmt.Sprintf(" (%d of %d)", i+1, len(r.urls))
				}
				return fmt.Errorf("--%s%s %w", r.flag, which, err)
			}
		}
	}
	return nil
}

// validateNumbers checks the sign and range of every numeric setting that
// Validate's main checks do not cover, naming the flag. Zero is accepted
// where it is a setting (FewShot, MinCandidates, RoundtripK, BM25K1, BM25B,
// MaxRetries, MaxPassages, Holdout, the rate limits and prices) and refused
// where it cannot work.
func (c *Config) validateNumbers() error {
	atLeast := []struct {
		flag string
		v    int
		min  int
		why  string
	}{
		{"max-tokens", c.MaxTokens, 1, ""},
		{"max-passage-chars", c.MaxPassageChars, 1, ""},
		{"few-shot", c.FewShot, 0, " (0: zero-shot prompts)"},
		{"max-query-words", c.MaxQueryWords, 1, ""},
		{"max-copied-words", c.MaxCopiedWords, 1, " (0 would drop every query that shares a word with its passage)"},
		{"min-candidates", c.MinCandidates, 0, " (0: no minimum)"},
		{"roundtrip-k", c.RoundtripK, 0, " (0 disables the round trip)"},
		{"embed-batch", c.EmbedBatch, 1, ""},
		{"teacher-batch", c.TeacherBatch, 1, ""},
		{"max-retries", c.MaxRetries, 0, " (0: no retry)"},
	}
	for _, a := range atLeast {
		if a.v < a.min {
			return fmt.Errorf("--%s must be at least %d%s, got %d", a.flag, a.min, a.why, a.v)
		}
	}
	switch {
	case c.MinCandidates > c.Candidates+1:
		// The source passage may be added to the candidates: one more.
		return fmt.Errorf("--min-candidates %d is more than --candidates %d can give: every query would be dropped", c.MinCandidates, c.Candidates)
	case c.BM25K1 < 0:
		return fmt.Errorf("--bm25-k1 must not be negative, got %g", c.BM25K1)
	case c.BM25B < 0 || c.BM25B > 1:
		return fmt.Errorf("--bm25-b must be in [0, 1], got %g", c.BM25B)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("--request-timeout must be positive, got %s", c.RequestTimeout)
	case c.TeacherMaxTokens == 0 || c.TeacherMaxTokens < -1:
		return fmt.Errorf("--teacher-max-tokens must be at least 1, or -1 for no cut, got %d", c.TeacherMaxTokens)
	case c.EmbedMaxTokens == 0 || c.EmbedMaxTokens < -1:
		return fmt.Errorf("--embed-max-tokens must be at least 1, or -1 for no cut, got %d", c.EmbedMaxTokens)
	case c.MaxOutage <= 0:
		return fmt.Errorf("--max-outage must be positive, got %s", c.MaxOutage)
	case c.Grace < 0:
		return fmt.Errorf("--grace must not be negative (0: abandon requests in flight at once), got %s", c.Grace)
	}
	return nil
}
