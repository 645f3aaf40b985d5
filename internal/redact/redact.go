// Package redact removes credentials from URLs and from free text that
// holds URLs, before anything is logged, stored, shown or put in an error.
// Every client, the store, the manifest and the report use it.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Redacted replaces a secret in a URL shown or stored by synthq.
const Redacted = "REDACTED"

// URL returns raw without credentials, for logs, errors, the stored
// config and the manifest: the user information (user:password@) is dropped
// and the value of every key-like query parameter (key, api_key, apikey,
// token, access_token, secret, password, sig, signature, and any name
// containing "key", "token", "secret", "pass" or "auth") becomes REDACTED.
// The rest of the URL is kept, so two URLs that differ only in a secret
// redact to the same string. A string that does not parse as a URL with a
// scheme and host is returned with anything that looks like user
// information or a key-like parameter redacted all the same.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" || AtPastHost(raw) {
		return redactLoose(raw)
	}
	return Parsed(u)
}

// AtPastHost reports an '@' after the authority of an absolute URL (in its
// path, query or fragment): the mark of a password holding '/', '?' or '#'
// that was not percent-encoded, which url.Parse reads as host, port and
// path ("http://u:123/x@host" parses as host "u" port 123). Such a URL is
// redacted as a whole up to its last '@'.
func AtPastHost(raw string) bool {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return false
	}
	end := strings.IndexAny(rest, "/?#")
	return end >= 0 && strings.Contains(rest[end:], "@")
}

// Parsed is URL of a parsed URL.
func Parsed(u *url.URL) string {
	if s := u.String(); AtPastHost(s) {
		return redactLoose(s)
	}
	c := *u
	if c.User != nil {
		c.User = nil
	}
	if c.RawQuery != "" {
		c.RawQuery = redactQuery(c.RawQuery)
	}
	c.Fragment, c.RawFragment = "", ""
	return c.String()
}

// redactQuery replaces the values of key-like parameters, keeping the
// parameters' order and the other values as they were written.
func redactQuery(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		name, _, hasValue := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if secretParam(name) {
			if hasValue || name != "" {
				parts[i] = url.QueryEscape(name) + "=" + Redacted
			}
		}
	}
	return strings.Join(parts, "&")
}

// secretParam reports whether a query parameter name is likely to carry a
// credential.
func secretParam(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "key", "api_key", "apikey", "api-key", "token", "access_token", "secret", "password", "passwd", "pwd", "sig", "signature", "credential", "credentials":
		return true
	}
	if strings.HasPrefix(n, "max_") || strings.HasSuffix(n, "_tokens") {
		return false // counts, not credentials (max_tokens, num_tokens)
	}
	for _, s := range []string{"key", "token", "secret", "pass", "auth", "sig", "credential"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// schemeInText finds the start of a URL with a scheme inside free text.
var schemeInText = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://`)

// urlEnd is where a URL in text ends: at a space, a quote or an angle
// bracket.
func urlEnd(s string) int {
	if i := strings.IndexAny(s, " \t\r\n\"'<>`"); i >= 0 {
		return i
	}
	return len(s)
}

// Text applies URL to every URL found in s (an error message, a stored
// failure reason), leaving the rest of the text as it is. A URL ends at a
// space or a quote, unless an '@' follows on the same line before any other
// URL: then its user information held a space or a quote, and the URL runs
// on to that '@' and past it (text between is redacted with it: an e-mail
// address later on the line costs some words, never a secret).
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	for {
		loc := schemeInText.FindStringIndex(s)
		if loc == nil {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:loc[0]])
		rest := s[loc[1]:]
		end := urlEnd(rest)
		line := rest
		if i := strings.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		if i := strings.Index(line, "://"); i >= 0 {
			line = line[:i]
		}
		if at := strings.LastIndexByte(line, '@'); at >= end {
			end = at + 1 + urlEnd(rest[at+1:])
		}
		m := s[loc[0] : loc[1]+end]
		// Trailing punctuation belongs to the sentence, not the URL.
		trimmed := strings.TrimRight(m, ".,;:)]}")
		b.WriteString(URL(trimmed))
		b.WriteString(m[len(trimmed):])
		s = s[loc[1]+end:]
	}
}

// redactLoose redacts what it can recognise in a string that is not a
// parseable absolute URL, erring on the side of the secret: everything up
// to the last '@' after the scheme (or from the start, without a scheme) is
// user information, whatever characters it holds ('/', '#', '?', spaces);
// a '#' and what follows it is dropped; key-like query values are redacted.
func redactLoose(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, rest = "", raw
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	if base, q, ok := strings.Cut(rest, "?"); ok {
		rest = base + "?" + redactQuery(q)
	}
	if ok {
		return scheme + "://" + rest
	}
	return rest
}

// secretKeyRe matches the names of settings that carry credentials:
// api_key, token, authorization, password, secret, x-api-key, …
var secretKeyRe = regexp.MustCompile(`(?i)(^|[_\-.]|api)(key|token|secret|password|passwd|pass|pwd|auth|authorization|credentials?|signature|sig)$`)

// Values returns a copy of a settings map (--llm-extra) with the value of
// every secret-looking key, at any depth, replaced by Redacted, and every
// string passed through Text.
func Values(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if secretKeyRe.MatchString(k) {
			out[k] = Redacted
			continue
		}
		out[k] = value(v)
	}
	return out
}

func value(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return Values(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = value(e)
		}
		return out
	case string:
		return Text(x)
	}
	return v
}
