package report

import (
	"regexp"
	"strings"

	"github.com/synthq/synthq/internal/redact"
)

// Redacted replaces a secret in anything the report shows.
const Redacted = "REDACTED"

var (
	secretRe = regexp.MustCompile(`(?i)(^|[_\-.]|api)(key|token|secret|password|passwd|pass|pwd|auth|authorization|credentials?|signature|sig)$`)
)

// Redact returns a copy of a decoded JSON value with URLs redacted in every
// string and map key, and the values of secret-like keys replaced.
func Redact(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			if secretRe.MatchString(k) && !strings.Contains(k, "://") {
				if _, isStr := val.(string); isStr {
					out[k] = Redacted
					continue
				}
			}
			out[redact.Text(k)] = Redact(val)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Redact(e)
		}
		return out
	case string:
		return redact.Text(x)
	}
	return v
}
