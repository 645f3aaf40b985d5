package redact

import (
	"fmt"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	cases := map[string]string{
		"http://localhost:8000/v1":                          "http://localhost:8000/v1",
		"https://user:SECRET@host/v1":                       "https://host/v1",
		"https://SECRET@host:443/v1":                        "https://host:443/v1",
		"https://host/v1?key=SECRET":                        "https://host/v1?key=REDACTED",
		"https://host/v1?api_key=SECRET&model=m":            "https://host/v1?api_key=REDACTED&model=m",
		"https://host/v1?model=m&apikey=SECRET":             "https://host/v1?model=m&apikey=REDACTED",
		"https://host/v1?token=SECRET&access_token=SECRET":  "https://host/v1?token=REDACTED&access_token=REDACTED",
		"https://host/v1?x-goog-api-key=SECRET":             "https://host/v1?x-goog-api-key=REDACTED",
		"https://host/v1?sig=SECRET&se=2030":                "https://host/v1?sig=REDACTED&se=2030",
		"https://host/v1?Signature=SECRET":                  "https://host/v1?Signature=REDACTED",
		"https://host/v1?client_secret=SECRET":              "https://host/v1?client_secret=REDACTED",
		"https://host/v1?password=SECRET#frag":              "https://host/v1?password=REDACTED",
		"https://u:SECRET@host/v1?key=SECRET/models":        "https://host/v1?key=REDACTED",
		"user:SECRET@host/v1":                               "host/v1",
		"host:8000/v1?token=SECRET":                         "host:8000/v1?token=REDACTED",
		"http://[::1]:8000/v1?auth=SECRET&limit=3":          "http://[::1]:8000/v1?auth=REDACTED&limit=3",
		"http://h/v1?%6Bey=SECRET":                          "http://h/v1?key=REDACTED",
		"http://h/v1?key":                                   "http://h/v1?key=REDACTED",
		"https://user:SECRET@host/v1?model=meta-llama%2F8B": "https://host/v1?model=meta-llama%2F8B",
	}
	for in, want := range cases {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactText(t *testing.T) {
	in := `teacher tei: POST https://u:SECRET@host/rerank?key=SECRET: HTTP 400: "bad" (tried http://a:SECRET@b/v1/models).`
	got := Text(in)
	if strings.Contains(got, "SECRET") {
		t.Errorf("Text left a secret: %s", got)
	}
	if want := `teacher tei: POST https://host/rerank?key=REDACTED: HTTP 400: "bad" (tried http://b/v1/models).`; got != want {
		t.Errorf("Text = %s\nwant          %s", got, want)
	}
	if s := "no url here"; Text(s) != s {
		t.Error("text without a URL changed")
	}
}

func ExampleURL() {
	fmt.Println(URL("https://user:secret@llm.example/v1?api_key=abc"))
	// Output: https://llm.example/v1?api_key=REDACTED
}
