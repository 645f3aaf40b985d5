package pipeline

import (
	"encoding/json"

	"github.com/synthq/synthq/internal/redact"
)

// MarshalJSON encodes the config with every server URL passed through
// redact.URL (no user information, no key-like query values), so the
// stored config, the manifest and anything else that encodes a Config never
// carry a credential given in a URL. Nothing reads URLs back from a stored
// config: a run takes them from its flags, and Fingerprint leaves them out.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config // the same fields and tags, without this method
	p := plain(c)
	p.LLMURLs, p.TeacherURLs, p.EmbedURLs = RedactURLs(c.LLMURLs), RedactURLs(c.TeacherURLs), RedactURLs(c.EmbedURLs)
	return json.Marshal(p)
}

// RedactURLs is redact.URL of each URL (nil stays nil).
func RedactURLs(urls []string) []string {
	if urls == nil {
		return nil
	}
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = redact.URL(u)
	}
	return out
}
