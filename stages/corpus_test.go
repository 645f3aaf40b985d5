package stages

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeCorpus(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	data := []byte(content)
	if strings.HasSuffix(name, ".gz") {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(data)
		zw.Close()
		data = b.Bytes()
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const good = `{"_id":"a","title":"T","text":"first passage"}` + "\n"

func TestReadCorpusBadLines(t *testing.T) {
	cases := []struct {
		name, content string
		wantErr       string // substring of the error, with file:line
		skipReason    string // counted under --skip-invalid
	}{
		{"invalid JSON", good + `{"_id":"b","text":` + "\n", ":2: invalid JSON", SkipInvalidJSON},
		{"missing id", good + `{"text":"x"}` + "\n", `:2: field "_id": missing`, SkipBadID},
		{"numeric id", good + `{"_id":7,"text":"x"}` + "\n", `:2: field "_id": not a string`, SkipBadID},
		{"non-string text", good + `{"_id":"b","text":["x"]}` + "\n", `:2: field "text": not a string`, SkipBadText},
		{"missing text", good + `{"_id":"b"}` + "\n", `:2: field "text": missing`, SkipBadText},
		{"non-string title", good + `{"_id":"b","title":3,"text":"x"}` + "\n", `:2: field "title": not a string`, SkipBadText},
		{"invalid UTF-8", good + "{\"_id\":\"b\",\"text\":\"caf\xe9\"}\n", ":2: invalid UTF-8", SkipInvalidUTF8},
		{"duplicate id", good + `{"_id":"c","text":"y"}` + "\n" + `{"_id":"a","text":"z"}` + "\n", `:3: field "_id": duplicate id "a" (first on line 1)`, SkipDuplicateID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeCorpus(t, "corpus.jsonl", tc.content)
			_, err := ReadCorpus(context.Background(), p, CorpusOptions{}, map[string]int64{}, func(Record) error { return nil })
			if err == nil || !strings.Contains(err.Error(), p+tc.wantErr) {
				t.Fatalf("error = %v, want %q", err, p+tc.wantErr)
			}
			skipped := map[string]int64{}
			var ids []string
			_, err = ReadCorpus(context.Background(), p, CorpusOptions{SkipInvalid: true}, skipped, func(r Record) error { ids = append(ids, r.ID); return nil })
			if err != nil {
				t.Fatalf("--skip-invalid: %v", err)
			}
			if skipped[tc.skipReason] != 1 || ids[0] != "a" {
				t.Errorf("--skip-invalid: skipped %v, ids %v; want one %s", skipped, ids, tc.skipReason)
			}
		})
	}
}

func TestReadCorpusFormats(t *testing.T) {
	body := "\ufeff" + `{"_id":"a","title":"T","text":"one"}` + "\r\n\r\n" + `{"_id":"b","text":"   "}` + "\r\n" + `{"_id":"c","text":"` + strings.Repeat("long ", 400000) + `"}`
	for _, name := range []string{"c.jsonl", "c.jsonl.gz"} {
		p := writeCorpus(t, name, body)
		skipped := map[string]int64{}
		var recs []Record
		if _, err := ReadCorpus(context.Background(), p, CorpusOptions{}, skipped, func(r Record) error { recs = append(recs, r); return nil }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(recs) != 2 || recs[0].ID != "a" || recs[0].Title != "T" || recs[1].ID != "c" || recs[1].Line != 4 || len(recs[1].Text) < 1_999_000 {
			t.Errorf("%s: got %d records %+v", name, len(recs), recs[0])
		}
		if skipped[SkipEmptyText] != 1 {
			t.Errorf("%s: empty text not counted: %v", name, skipped)
		}
	}
	// Generic JSONL with other field names.
	p := writeCorpus(t, "g.jsonl", `{"doc_id":"x1","body":"hello","heading":"H"}`+"\n")
	var r Record
	if _, err := ReadCorpus(context.Background(), p, CorpusOptions{IDField: "doc_id", TextField: "body", TitleField: "heading"}, map[string]int64{}, func(x Record) error { r = x; return nil }); err != nil || r.ID != "x1" || r.Title != "H" {
		t.Errorf("generic fields: %+v, %v", r, err)
	}
	for name, content := range map[string]string{"empty": "", "only blank": "\n\n", "all empty text": `{"_id":"a","text":""}` + "\n"} {
		p := writeCorpus(t, "e.jsonl", content)
		if _, err := ReadCorpus(context.Background(), p, CorpusOptions{}, map[string]int64{}, func(Record) error { return nil }); err == nil || !strings.Contains(err.Error(), "no passages") {
			t.Errorf("%s corpus: err = %v, want 'no passages'", name, err)
		}
	}
}
