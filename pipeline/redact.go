package pipeline

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/synthq/synthq/internal/redact"
)

// MarshalJSON encodes the config as a person reads it and a program parses
// it: durations as Go durations ("30s", "1h30m0s"), concurrency as the
// flag takes it ("auto" or a whole number), and every server URL passed
// through redact.URL (no user information, no key-like query values),
// so the stored config, the manifest and anything else that encodes a
// Config never carry a credential given in a URL. Nothing reads URLs back
// from a stored config: a run takes them from its flags, and Fingerprint
// leaves them out. UnmarshalJSON reads it back (and the nanosecond and
// integer forms of stores written before).
func (c Config) MarshalJSON() ([]byte, error) {
	p := plainConfig(c)
	p.LLMURLs, p.TeacherURLs, p.EmbedURLs = RedactURLs(c.LLMURLs), RedactURLs(c.TeacherURLs), RedactURLs(c.EmbedURLs)
	p.LLMExtra = redact.Values(c.LLMExtra) // an api_key or token given as an extra body key
	return json.Marshal(wireConfig{plainConfig: p, LLMModel: c.LLMModel, TeacherModel: c.TeacherModel,
		LLMURLs: p.LLMURLs, TeacherURLs: p.TeacherURLs,
		// A per-role 0 ("as --concurrency") is left out by omitempty.
		Concurrency: concurrencyJSON(c.Concurrency), LLMConcurrency: concurrencyJSON(c.LLMConcurrency),
		TeacherConcurrency: concurrencyJSON(c.TeacherConcurrency), EmbedConcurrency: concurrencyJSON(c.EmbedConcurrency),
		MaxOutage: jsonDuration(c.MaxOutage), Grace: jsonDuration(c.Grace), RequestTimeout: jsonDuration(c.RequestTimeout)})
}

// UnmarshalJSON reads what MarshalJSON writes, and the earlier encoding
// (durations in nanoseconds, concurrency as a number with 0 for auto).
func (c *Config) UnmarshalJSON(b []byte) error {
	var w wireConfig
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = Config(w.plainConfig)
	c.LLMModel, c.TeacherModel, c.LLMURLs, c.TeacherURLs = w.LLMModel, w.TeacherModel, w.LLMURLs, w.TeacherURLs
	for _, f := range []struct {
		src concurrencyJSON
		dst *int
	}{{w.Concurrency, &c.Concurrency}, {w.LLMConcurrency, &c.LLMConcurrency},
		{w.TeacherConcurrency, &c.TeacherConcurrency}, {w.EmbedConcurrency, &c.EmbedConcurrency}} {
		*f.dst = int(f.src)
	}
	c.MaxOutage, c.Grace, c.RequestTimeout = time.Duration(w.MaxOutage), time.Duration(w.Grace), time.Duration(w.RequestTimeout)
	return nil
}

// plainConfig has Config's fields and tags without its JSON methods.
type plainConfig Config

// wireConfig is Config as encoded: its own fields shadow plainConfig's of
// the same JSON name.
type wireConfig struct {
	plainConfig
	// Left out when empty: an offline run has no LLM or teacher model.
	LLMModel           string          `json:"llm_model,omitempty"`
	TeacherModel       string          `json:"teacher_model,omitempty"`
	LLMURLs            []string        `json:"llm_urls,omitempty"`
	TeacherURLs        []string        `json:"teacher_urls,omitempty"`
	Concurrency        concurrencyJSON `json:"concurrency"`
	LLMConcurrency     concurrencyJSON `json:"llm_concurrency,omitempty"`
	TeacherConcurrency concurrencyJSON `json:"teacher_concurrency,omitempty"`
	EmbedConcurrency   concurrencyJSON `json:"embed_concurrency,omitempty"`
	MaxOutage          jsonDuration    `json:"max_outage"`
	Grace              jsonDuration    `json:"grace"`
	RequestTimeout     jsonDuration    `json:"request_timeout"`
}

// jsonDuration is a time.Duration encoded as Go writes it ("30s"), read
// from that or from a number of nanoseconds.
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var ns int64
		if err := json.Unmarshal(b, &ns); err != nil {
			return fmt.Errorf("want a duration such as \"30s\": %s", b)
		}
		*d = jsonDuration(ns)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = jsonDuration(v)
	return nil
}

// concurrencyJSON is a concurrency setting as its flag takes it: "auto"
// (0) or a whole number; read from that or from a bare number.
type concurrencyJSON int

func (n concurrencyJSON) MarshalJSON() ([]byte, error) {
	if n == 0 {
		return []byte(`"auto"`), nil
	}
	return []byte(strconv.Itoa(int(n))), nil
}

func (n *concurrencyJSON) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s == "auto" || s == "" {
			*n = 0
			return nil
		}
		v, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("want \"auto\" or a whole number, got %q", s)
		}
		*n = concurrencyJSON(v)
		return nil
	}
	var v int
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("want \"auto\" or a whole number: %s", b)
	}
	*n = concurrencyJSON(v)
	return nil
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
