package pipeline

import (
	"encoding/json"
	"math"
	"net/url"
	"strings"
	"testing"
)

// TestValidateRefusesNonFinite: NaN and ±Inf in any number setting are
// refused naming its flag (they passed every range check: `export
// --dev-fraction NaN` panicked cutting the split).
func TestValidateRefusesNonFinite(t *testing.T) {
	fields := map[string]func(*Config, float64){
		"temperature": func(c *Config, v float64) { c.Temperature = v },
		"top-p":       func(c *Config, v float64) { c.TopP = v },
		"rpm":         func(c *Config, v float64) { c.RPM = v },
		"tpm":         func(c *Config, v float64) { c.TPM = v },
		"teacher-rpm": func(c *Config, v float64) { c.TeacherRPM = v },
		"price-input": func(c *Config, v float64) { c.PriceInput = v },
		"price-output": func(c *Config, v float64) {
			c.PriceOutput = v
		},
		"dedup-threshold":    func(c *Config, v float64) { c.DedupThreshold = v },
		"bm25-k1":            func(c *Config, v float64) { c.BM25K1 = v },
		"bm25-b":             func(c *Config, v float64) { c.BM25B = v },
		"min-top-percentile": func(c *Config, v float64) { c.MinTopPercentile = v },
		"dev-fraction":       func(c *Config, v float64) { c.DevFraction = v },
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for flag, set := range fields {
		for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
			c := DefaultConfig()
			set(c, v)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), "--"+flag+" must be a finite number") {
				t.Errorf("--%s %g: err %v, want it refused by name", flag, v, err)
			}
		}
	}
}

// NastyPasswords are passwords of the shapes that break URL parsing or
// redaction: '/', '#', '?', '@', spaces, quotes, a colon, a bad
// %-escape, non-ASCII, control characters, digits that read as a port.
// Each holds the pieces "S3CR" and "XPW9", which must appear in no output.
var nastyPasswords = []string{
	"S3CR/XPW9", "S3CR#XPW9", "S3CR?XPW9", "S3CR@XPW9", "S3CR XPW9", `S3CR"XPW9`, "S3CR'XPW9",
	"S3CR:XPW9", "S3CR%zzXPW9", "S3CRäXPW9", "S3CR\tXPW9", "S3CR<XPW9>", "S3CR`XPW9", "S3CR\\XPW9",
	"1234/S3CR/XPW9", "1234#S3CRXPW9", "S3CR&key=XPW9", "S3CR/..%2FXPW9",
}

func leaks(s string) bool { return strings.Contains(s, "S3CR") || strings.Contains(s, "XPW9") }

// TestValidateURLs: every URL of every role is checked at start-up, the
// second --llm-url as much as the first; the error names the flag and the
// reason and never holds the password, whatever its shape. The same
// passwords percent-encoded are good URLs, and the encoded config (stored,
// in the manifest) does not hold them either.
func TestValidateURLs(t *testing.T) {
	good := "http://127.0.0.1:8000/v1"
	for _, pw := range nastyPasswords {
		raw := "http://user:" + pw + "@127.0.0.1:8000/v1"
		for _, role := range []string{"llm-url", "teacher-url", "embed-url"} {
			c := DefaultConfig()
			urls := []string{good, raw}
			switch role {
			case "llm-url":
				c.LLMURLs = urls
			case "teacher-url":
				c.TeacherURLs = urls
			case "embed-url":
				c.EmbedURLs, c.EmbedModels, c.Retrievers = urls, []string{"e"}, []string{"dense"}
			}
			err := c.Validate()
			// '@', a quote, '&' and ':' are fine in user information
			// (url.Parse takes it up to the last '@'); the rest is not.
			if strings.ContainsAny(pw, "/#? \"\t<>`\\%ä") {
				if err == nil || !strings.Contains(err.Error(), "--"+role+" (2 of 2)") {
					t.Errorf("--%s %q: err %v, want the second URL refused by name", role, pw, err)
				}
			}
			if err != nil && leaks(err.Error()) {
				t.Errorf("--%s %q: the error shows the password: %v", role, pw, err)
			}
			b, _ := json.Marshal(c)
			if leaks(string(b)) {
				t.Errorf("--%s %q: the encoded config shows the password: %s", role, pw, b)
			}
		}
		enc := "http://" + url.UserPassword("user", pw).String() + "@127.0.0.1:8000/v1"
		c := DefaultConfig()
		c.LLMURLs = []string{good, enc}
		if err := c.Validate(); err != nil {
			t.Errorf("%q percent-encoded (%s): %v", pw, enc, err)
		}
		if b, _ := json.Marshal(c); leaks(string(b)) {
			t.Errorf("%q percent-encoded: the encoded config shows the password: %s", pw, b)
		}
	}
	for raw, reason := range map[string]string{
		"localhost:8000/v1":       "no scheme",
		"ftp://host/v1":           `scheme "ftp"`,
		"http:///v1":              "no host",
		"http://host:80a/v1":      "invalid port",
		"http://host/v1#frag":     "'#'",
		"":                        "empty URL",
		"http://u:1234/x@host/v1": "an '@' after the host",
	} {
		c := DefaultConfig()
		c.TeacherURLs = []string{raw}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), reason) || !strings.HasPrefix(err.Error(), "--teacher-url ") {
			t.Errorf("%q: err %v, want --teacher-url ... %s", raw, err, reason)
		}
	}
}

// TestLLMExtraSecretsRedacted: secret-looking --llm-extra keys never reach
// the stored config or the manifest (both encode the Config); others do.
func TestLLMExtraSecretsRedacted(t *testing.T) {
	c := DefaultConfig()
	c.LLMExtra = map[string]any{"api_key": "S3CR1", "top_k": 5.0, "Authorization": "Bearer XPW9",
		"headers": map[string]any{"x-api-key": "S3CR2", "token": "XPW9"}, "password": 1234.0}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if leaks(string(b)) || strings.Contains(string(b), "1234") || !strings.Contains(string(b), `"top_k":5`) {
		t.Errorf("encoded config: %s", b)
	}
	if c.LLMExtra["api_key"] != "S3CR1" {
		t.Error("the config's own map was changed")
	}
}
