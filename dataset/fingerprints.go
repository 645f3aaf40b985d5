package dataset

import (
	"github.com/synthq/synthq/internal/window"
	"github.com/synthq/synthq/pipeline"
)

// TeacherFingerprint identifies what determines a teacher score: the API,
// the model, what the teacher reads of a passage and the window passages
// are cut to (TeacherWindow).
func TeacherFingerprint(cfg *pipeline.Config) string {
	if cfg.Offline {
		return pipeline.Fingerprint("teacher/v1", "lexical", cfg.TeacherInput)
	}
	if d := TeacherWindow(cfg, nil).Desc(); d != "" {
		return pipeline.Fingerprint("teacher/v2", cfg.TeacherAPI, cfg.TeacherModel, cfg.TeacherInput, d)
	}
	return pipeline.Fingerprint("teacher/v1", cfg.TeacherAPI, cfg.TeacherModel, cfg.TeacherInput)
}

// TeacherReserve is the tokens a cross-encoder's input format adds to a
// (query, passage) pair ([CLS] query [SEP] passage [SEP], or <s> … </s></s> …
// </s>), with a margin.
const TeacherReserve = 8

// TeacherWindow is the cut of passages for the teacher: the query and the
// passage together within cfg.TeacherMaxTokens (none when it is negative),
// counted by count (the --teacher-tokenizer's) or, when count is nil, by
// tokens.Encoder. The fingerprint depends on it.
func TeacherWindow(cfg *pipeline.Config, count func(string) int) window.Cutter {
	if cfg.TeacherMaxTokens <= 0 {
		return window.Cutter{}
	}
	c := window.Cutter{MaxTokens: cfg.TeacherMaxTokens, Reserve: TeacherReserve}
	if cfg.TeacherTokenizer != "" {
		c.Count, c.CountName = count, cfg.TeacherTokenizer
	}
	return c
}

// EmbedWindow is the cut of texts (prefix included) for the embedder:
// cfg.EmbedMaxTokens less 2 for [CLS]/[SEP] (none when it is negative),
// counted by count (the --embed-tokenizer's) or tokens.Encoder.
func EmbedWindow(cfg *pipeline.Config, count func(string) int) window.Cutter {
	if cfg.EmbedMaxTokens <= 0 {
		return window.Cutter{}
	}
	c := window.Cutter{MaxTokens: cfg.EmbedMaxTokens, Reserve: 2}
	if cfg.EmbedTokenizer != "" {
		c.Count, c.CountName = count, cfg.EmbedTokenizer
	}
	return c
}
