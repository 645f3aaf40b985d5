package dataset

import (
	"context"

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

// ServerTokenizer is the --teacher-tokenizer / --embed-tokenizer value that
// counts tokens with the model server's own tokenizer (its /tokenize route)
// instead of a tokenizer.json.
const ServerTokenizer = "server"

// TeacherWindow is the cut of passages for the teacher: the query and the
// passage together within cfg.TeacherMaxTokens (none when it is negative),
// counted by count (the --teacher-tokenizer's: a tokenizer.json's, or the
// server's when it is ServerTokenizer) or, when none is set, by
// tokens.Encoder. The fingerprint depends on it (Desc; count may be nil for
// that).
func TeacherWindow(cfg *pipeline.Config, count func(context.Context, string) (int, error)) window.Cutter {
	return cutter(cfg.TeacherMaxTokens, TeacherReserve, cfg.TeacherTokenizer, count)
}

func cutter(maxTokens, reserve int, tokenizer string, count func(context.Context, string) (int, error)) window.Cutter {
	if maxTokens <= 0 {
		return window.Cutter{}
	}
	c := window.Cutter{MaxTokens: maxTokens, Reserve: reserve}
	if tokenizer != "" {
		c.Count, c.CountName, c.Remote = count, tokenizer, tokenizer == ServerTokenizer
	}
	return c
}

// EmbedWindow is the cut of texts (prefix included) for the embedder:
// cfg.EmbedMaxTokens less 2 for [CLS]/[SEP] (none when it is negative),
// counted by count (the --embed-tokenizer's) or tokens.Encoder.
func EmbedWindow(cfg *pipeline.Config, count func(context.Context, string) (int, error)) window.Cutter {
	return cutter(cfg.EmbedMaxTokens, 2, cfg.EmbedTokenizer, count)
}
