package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each row of the README's bad-input table: what synthq does and the message
// it prints. Messages name the file, the line and the field.
func TestBadInputTable(t *testing.T) {
	good := `{"_id":"a","title":"Sync","text":"The client syncs files every five minutes."}` + "\n" +
		`{"_id":"b","title":"Quota","text":"Each account has fifty gigabytes of storage."}` + "\n"
	cases := []struct {
		name    string
		corpus  string
		extra   []string // more run flags; "EX" is replaced by the examples file
		example string
		code    int
		want    string // substring of the output; "FILE" is the corpus path
	}{
		{"invalid JSON", good + `{"_id":"c","text":` + "\n", nil, "", exitError, `FILE:3: invalid JSON`},
		{"a malformed line points to --skip-invalid", good + `{"_id":"c","text":` + "\n", nil, "", exitError, `; --skip-invalid skips such lines (counted in the manifest and stats)`},
		{"id instead of _id", `{"id":"a","text":"x"}` + "\n", nil, "", exitError, `FILE:1: field "_id": missing; the line has "id": give --id-field id`},
		{"contents instead of text", `{"_id":"a","contents":"x"}` + "\n", nil, "", exitError, `FILE:1: field "text": missing; the line has "contents": give --text-field contents`},
		{"missing id", good + `{"text":"x"}` + "\n", nil, "", exitError, `FILE:3: field "_id": missing`},
		{"non-string id", good + `{"_id":7,"text":"x"}` + "\n", nil, "", exitError, `FILE:3: field "_id": not a string`},
		{"non-string text", good + `{"_id":"c","text":{"p":1}}` + "\n", nil, "", exitError, `FILE:3: field "text": not a string`},
		{"invalid UTF-8", good + "{\"_id\":\"c\",\"text\":\"caf\xe9\"}\n", nil, "", exitError, `FILE:3: invalid UTF-8`},
		{"duplicate id", good + `{"_id":"a","text":"again"}` + "\n", nil, "", exitError, `FILE:3: field "_id": duplicate id "a" (first on line 1)`},
		{"id over 512 bytes", good + `{"_id":"` + strings.Repeat("x", 64990) + `","text":"long id"}` + "\n", nil, "", exitError, `FILE:3: field "_id": id of 64990 bytes, longer than the limit of 512: "xxxxx`},
		{"id over Badger's key limit, skipped", good + `{"_id":"` + strings.Repeat("y", 70000) + `","text":"long id"}` + "\n", []string{"--skip-invalid"}, "", 0, ""},
		{"skip-invalid counts instead", good + `{"_id":"a","text":"again"}` + "\n", []string{"--skip-invalid"}, "", 0, ""},
		{"empty file", "", nil, "", exitError, `FILE: no passages (0 lines read)`},
		{"UTF-8 BOM and CRLF", "\ufeff" + strings.ReplaceAll(good, "\n", "\r\n"), nil, "", 0, ""},
		{"2 MB passage", good + `{"_id":"c","text":"` + strings.Repeat("storage ", 262144) + `"}` + "\n", nil, "", 0, ""},
		{"unknown query type", good, []string{"--query-types", "questions,bogus"}, "", exitError, `--query-types: unknown query type "bogus"`},
		{"examples file with a wrong type", good, []string{"--examples", "EX"}, `{"type":"question","passage":"p","query":"q"}` + "\n", exitError, `ex.jsonl:1: field "type": unknown query type "question"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "corpus.jsonl")
			os.WriteFile(p, []byte(tc.corpus), 0o644)
			args := []string{"run", "--offline", "--corpus", p, "--out", filepath.Join(dir, "out"), "--quiet", "--min-candidates", "1", "--min-top-percentile", "0"}
			for _, a := range tc.extra {
				if a == "EX" {
					a = filepath.Join(dir, "ex.jsonl")
					os.WriteFile(a, []byte(tc.example), 0o644)
				}
				args = append(args, a)
			}
			code, msg := synthq(t, context.Background(), args...)
			want := strings.ReplaceAll(tc.want, "FILE", p)
			if code != tc.code || !strings.Contains(msg, want) {
				t.Errorf("exit %d, want %d with %q:\n%.2000s", code, tc.code, want, msg)
			}
			if len(msg) > 2000 {
				t.Errorf("a message of %d bytes: quote the input cut short", len(msg))
			}
		})
	}

	t.Run("qrels with a wrong column count", func(t *testing.T) {
		dir := t.TempDir()
		c, q, r := filepath.Join(dir, "corpus.jsonl"), filepath.Join(dir, "queries.jsonl"), filepath.Join(dir, "qrels.tsv")
		os.WriteFile(c, []byte(good), 0o644)
		os.WriteFile(q, []byte(`{"_id":"q1","text":"storage quota"}`+"\n"), 0o644)
		os.WriteFile(r, []byte("query-id\tcorpus-id\tscore\nq1\tb\n"), 0o644)
		code, msg := synthq(t, context.Background(), "eval", "--corpus", c, "--queries", q, "--qrels", r)
		if want := r + ":2: want 3 tab-separated columns (query-id, corpus-id, score), got 2"; code != exitError || !strings.Contains(msg, want) {
			t.Errorf("exit %d, want 1 with %q:\n%s", code, want, msg)
		}
	})

	t.Run("corpus changed since the store was made", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "corpus.jsonl")
		os.WriteFile(p, []byte(good), 0o644)
		args := []string{"run", "--offline", "--corpus", p, "--out", filepath.Join(dir, "out"), "--quiet", "--min-candidates", "1"}
		if code, msg := synthq(t, context.Background(), args...); code != 0 {
			t.Fatalf("first run: exit %d: %s", code, msg)
		}
		os.WriteFile(p, []byte(strings.Replace(good, "fifty", "sixty", 1)), 0o644)
		code, msg := synthq(t, context.Background(), args...)
		if want := p + `:2: passage "b" has changed since store`; code != exitError || !strings.Contains(msg, want) {
			t.Errorf("exit %d, want 1 with %q:\n%s", code, want, msg)
		}
	})
}
