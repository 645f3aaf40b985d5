package fakes

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"strings"
)

//go:embed testdata/llamacpp-answers.md
var llamacppAnswers string

// RecordedAnswers returns the 2xx answer bodies llama-server gave (recorded
// in testdata/llamacpp-answers.md) whose section title starts with prefix
// ("chat", "embedding", "rerank"): real answers, for seeding fuzz targets.
// The elided volatile fields (id, created, "…") read as null; an answer
// recorded cut keeps its whole items.
func RecordedAnswers(prefix string) [][]byte {
	var out [][]byte
	title, ok2xx := "", false
	lines := strings.Split(llamacppAnswers, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "## "):
			title, ok2xx = strings.TrimPrefix(l, "## "), false
		case strings.HasPrefix(l, "- answer: HTTP 2"):
			ok2xx = true
		case l == "```json" && ok2xx && strings.HasPrefix(title, prefix) && i+1 < len(lines):
			b := []byte(strings.ReplaceAll(lines[i+1], "…", "null"))
			if !json.Valid(b) {
				// A long answer is recorded cut ("…" in a list): keep its
				// whole items and close the list.
				if j := bytes.LastIndex(b, []byte("},{")); j > 0 {
					b = append(b[:j+1:j+1], "]}"...)
				}
			}
			if json.Valid(b) {
				out = append(out, b)
			}
		}
	}
	return out
}
