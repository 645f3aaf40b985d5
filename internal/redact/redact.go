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
	if err != nil || u.Scheme == "" || u.Host == "" {
		return redactLoose(raw)
	}
	return Parsed(u)
}

// Parsed is URL of a parsed URL.
func Parsed(u *url.URL) string {
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

// urlInText finds URLs with a scheme inside free text.
var urlInText = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>` + "`" + `]+`)

// Text applies URL to every URL found in s (an error message, a
// stored failure reason), leaving the rest of the text as it is.
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, func(m string) string {
		// Trailing punctuation belongs to the sentence, not the URL.
		trimmed := strings.TrimRight(m, ".,;:)]}")
		return URL(trimmed) + m[len(trimmed):]
	})
}

// userinfoLoose matches "scheme://user:pass@" or "user:pass@host" shapes in a
// string that url.Parse refused.
var userinfoLoose = regexp.MustCompile(`(^|//)[^/@\s]*@`)

// redactLoose redacts what it can recognise in a string that is not a
// parseable absolute URL.
func redactLoose(raw string) string {
	s := userinfoLoose.ReplaceAllString(raw, "$1")
	if base, q, ok := strings.Cut(s, "?"); ok {
		s = base + "?" + redactQuery(q)
	}
	return s
}
