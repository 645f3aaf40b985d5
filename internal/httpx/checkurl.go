package httpx

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/synthq/synthq/internal/redact"
)

// CheckURL reports why raw cannot be a server's base URL, or nil. The
// error's text never holds raw or any part of its user information: it is
// redact.URL(raw) and a reason of our own words (url.Parse's errors quote the
// URL, or the "port" that is really the tail of a password:
// `invalid port ":SECRET" after host`). It refuses what does not parse, a
// scheme other than http or https, no host, a #fragment, and an '@' past
// the host: a password holding '/', '?', '#' or '@' that was not
// percent-encoded, which url.Parse may read as host, port and path without
// an error ("http://u:123/x@host").
func CheckURL(raw string) error {
	reason := urlProblem(raw)
	if reason == "" {
		return nil
	}
	return &URLError{URL: redact.URL(raw), Reason: reason}
}

// URLError is a base URL that cannot work; URL is redacted.
type URLError struct {
	URL    string
	Reason string
}

func (e *URLError) Error() string { return fmt.Sprintf("%s: %s", e.URL, e.Reason) }

const encodeHint = "; percent-encode special characters in a password (/ as %2F, ? as %3F, # as %23, @ as %40, a space as %20)"

// urlProblem is CheckURL's reason, "" for a good URL.
func urlProblem(raw string) string {
	if strings.TrimSpace(raw) == "" {
		return "empty URL"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return parseReason(err)
	}
	switch {
	case u.Scheme == "":
		return "no scheme: want http:// or https://"
	case u.Scheme != "http" && u.Scheme != "https":
		if u.Opaque != "" && u.Host == "" {
			// "localhost:8000/v1" parses as scheme "localhost".
			return "no scheme: want http:// or https:// before the host"
		}
		return fmt.Sprintf("scheme %q: want http or https", u.Scheme)
	case redact.AtPastHost(raw):
		return "an '@' after the host" + encodeHint
	case u.Host == "" || u.Hostname() == "":
		return "no host"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "a '#' (a base URL has no fragment)" + encodeHint
	}
	if p := u.Port(); p != "" {
		for _, c := range p {
			if c < '0' || c > '9' {
				return "invalid port" + encodeHint
			}
		}
	}
	return ""
}

// parseReason names a url.Parse failure in our own words: its message may
// quote part of a password.
func parseReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var esc url.EscapeError
	var host url.InvalidHostError
	m := err.Error()
	switch {
	case errors.As(err, &esc):
		return "an invalid %-escape (a '%' must be followed by two hex digits; write a literal % as %25)"
	case errors.As(err, &host):
		return "an invalid character in the host" + encodeHint
	case strings.Contains(m, "invalid port"):
		return "invalid port" + encodeHint
	case strings.Contains(m, "invalid userinfo"):
		return "invalid user information" + encodeHint
	case strings.Contains(m, "control character"):
		return "a control character (tab, newline)"
	case strings.Contains(m, "missing protocol scheme"):
		return "no scheme: want http:// or https://"
	case strings.Contains(m, "first path segment in URL cannot contain colon"):
		return "no scheme: want http:// or https://"
	}
	return "does not parse as a URL" + encodeHint
}
