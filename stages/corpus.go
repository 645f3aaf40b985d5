package stages

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
)

// CorpusOptions say how to read a corpus file.
type CorpusOptions struct {
	IDField, TextField, TitleField string
	// SkipInvalid skips malformed lines (counted by reason) instead of
	// stopping at the first with its file:line.
	SkipInvalid bool
}

// Record is one passage read from a corpus file.
type Record struct {
	ID, Title, Text string
	Line            int
}

// MaxIDBytes is the longest passage id accepted. Every store key built from
// an id (the passage, its query ids "<id>:<type>:<n>" under each derived
// table) stays far below Badger's key limit (65,000 bytes), so a long id is
// refused when the corpus is read, with its line, and never after paid work.
const MaxIDBytes = 512

// Full is the passage as the retrievers and the teacher read it: the same
// text as the stored Passage's Full, so evaluation and mining agree.
func (r Record) Full() string { return dataset.Passage{Title: r.Title, Text: r.Text}.Full() }

// Corpus read outcomes counted besides the passages.
const (
	SkipEmptyText   = "empty_text"
	SkipInvalidJSON = "invalid_json"
	SkipInvalidUTF8 = "invalid_utf8"
	SkipBadID       = "bad_id"
	SkipBadText     = "bad_text"
	SkipDuplicateID = "duplicate_id"
)

// LineError is a malformed corpus line: file, line, field and reason.
type LineError struct {
	File   string
	Line   int
	Field  string
	Reason string // a SkipX constant
	Msg    string
	Hint   string // what to do about it, if anything ("" for none)
}

func (e *LineError) Error() string {
	msg := fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	if e.Field != "" {
		msg = fmt.Sprintf("%s:%d: field %q: %s", e.File, e.Line, e.Field, e.Msg)
	}
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// skipHint is the hint of a line that stops the read.
const skipHint = "--skip-invalid skips such lines (counted in the manifest and stats)"

// likelyFields are the names corpora commonly give their id or text field,
// for suggesting --id-field or --text-field when the one asked for is
// missing.
func likelyFields(kind string) []string {
	if kind == "id" {
		return []string{"_id", "id", "docid", "doc_id", "pid", "passage_id", "corpus_id", "ID", "Id"}
	}
	return []string{"text", "contents", "content", "body", "passage", "document", "paragraph"}
}

// fieldHint suggests the flag that names a field the line does have, for a
// line that lacks the field asked for (a corpus with "id" where BEIR has
// "_id").
func fieldHint(obj map[string]json.RawMessage, flag, kind string) string {
	for _, k := range likelyFields(kind) {
		if _, ok := obj[k]; ok {
			return fmt.Sprintf("the line has %q: give %s %s", k, flag, k)
		}
	}
	return skipHint
}

// ReadCorpus streams the passages of a JSONL corpus (plain or gzip, detected
// by content; UTF-8 BOM and CRLF accepted) to fn in file order. A malformed
// line stops the read with a *LineError naming file, line and field, unless
// opts.SkipInvalid, in which case it is counted in skipped by reason.
// Passages with empty text are always skipped and counted. Duplicate ids are
// an error naming both lines. It returns the sha256 of the file's bytes.
func ReadCorpus(ctx context.Context, path string, opts CorpusOptions, skipped map[string]int64, fn func(Record) error) (string, error) {
	if opts.IDField == "" {
		opts.IDField = "_id"
	}
	if opts.TextField == "" {
		opts.TextField = "text"
	}
	if opts.TitleField == "" {
		opts.TitleField = "title"
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open corpus: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(f, h), 1<<20)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return "", fmt.Errorf("%s: gzip: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	lr := bufio.NewReaderSize(r, 1<<20)
	seen := map[string]int{}
	lineNo, passages := 0, 0
	var buf []byte
	for {
		if lineNo%4096 == 0 && ctx.Err() != nil {
			return "", ctx.Err()
		}
		chunk, err := lr.ReadSlice('\n')
		buf = append(buf[:0], chunk...)
		for errors.Is(err, bufio.ErrBufferFull) {
			chunk, err = lr.ReadSlice('\n')
			buf = append(buf, chunk...)
		}
		if len(buf) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return "", fmt.Errorf("%s:%d: read: %w", path, lineNo+1, err)
		}
		lineNo++
		line := bytes.TrimRight(buf, "\r\n")
		if lineNo == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if len(bytes.TrimSpace(line)) > 0 {
			rec, lerr := parseLine(path, lineNo, line, opts)
			if lerr == nil {
				if prev, dup := seen[rec.ID]; dup {
					lerr = &LineError{File: path, Line: lineNo, Field: opts.IDField, Reason: SkipDuplicateID,
						Msg: fmt.Sprintf("duplicate id %q (first on line %d)", rec.ID, prev)}
				}
			}
			switch {
			case lerr != nil && lerr.Reason == SkipEmptyText:
				skipped[SkipEmptyText]++
			case lerr != nil && opts.SkipInvalid:
				skipped[lerr.Reason]++
			case lerr != nil:
				if lerr.Hint == "" {
					lerr.Hint = skipHint
				}
				return "", lerr
			default:
				seen[rec.ID] = lineNo
				passages++
				if err := fn(rec); err != nil {
					return "", err
				}
			}
		}
		if err == io.EOF {
			break
		}
	}
	if passages == 0 {
		return "", fmt.Errorf("%s: no passages (%d lines read): check --id-field %q and --text-field %q", path, lineNo, opts.IDField, opts.TextField)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func parseLine(path string, n int, line []byte, opts CorpusOptions) (Record, *LineError) {
	fail := func(field, reason, msg string) (Record, *LineError) {
		return Record{}, &LineError{File: path, Line: n, Field: field, Reason: reason, Msg: msg}
	}
	if !utf8.Valid(line) {
		return fail("", SkipInvalidUTF8, "invalid UTF-8")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		return fail("", SkipInvalidJSON, "invalid JSON: "+err.Error())
	}
	var rec Record
	rec.Line = n
	raw, ok := obj[opts.IDField]
	if !ok {
		r, e := fail(opts.IDField, SkipBadID, "missing")
		e.Hint = fieldHint(obj, "--id-field", "id")
		return r, e
	}
	if err := json.Unmarshal(raw, &rec.ID); err != nil {
		return fail(opts.IDField, SkipBadID, "not a string: "+abbrev(string(raw)))
	}
	if strings.TrimSpace(rec.ID) == "" {
		return fail(opts.IDField, SkipBadID, "empty")
	}
	if len(rec.ID) > MaxIDBytes {
		return fail(opts.IDField, SkipBadID, fmt.Sprintf("id of %d bytes, longer than the limit of %d: %q", len(rec.ID), MaxIDBytes, abbrev(rec.ID)))
	}
	raw, ok = obj[opts.TextField]
	if !ok {
		r, e := fail(opts.TextField, SkipBadText, "missing")
		e.Hint = fieldHint(obj, "--text-field", "text")
		return r, e
	}
	if string(raw) != "null" {
		if err := json.Unmarshal(raw, &rec.Text); err != nil {
			return fail(opts.TextField, SkipBadText, "not a string: "+abbrev(string(raw)))
		}
	}
	if raw, ok := obj[opts.TitleField]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &rec.Title); err != nil {
			return fail(opts.TitleField, SkipBadText, "not a string: "+abbrev(string(raw)))
		}
	}
	rec.Text = strings.TrimSpace(rec.Text)
	rec.Title = strings.TrimSpace(rec.Title)
	if rec.Text == "" {
		return fail(opts.TextField, SkipEmptyText, "empty")
	}
	return rec, nil
}

// abbrev cuts s to about 40 bytes (at a character boundary) for a message.
func abbrev(s string) string {
	if len(s) <= 40 {
		return s
	}
	n := 40
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// CorpusStage reads the corpus into the store (doc/<id>) and writes the
// passage texts file beside it (STORE/index/passages-*.txt, see
// passagefile.go; ~the corpus's size on disk). A store remembers
// its corpus: re-running with the same file writes nothing; a file whose
// passage has the same id but different text is refused (never silently
// mixed), naming the passage and line.
func CorpusStage() pipeline.Stage {
	return pipeline.Stage{
		Name:   "corpus",
		Writes: []string{pipeline.PrefixDoc},
		Doc:    "read and validate the corpus file into the store",
		Run:    runCorpus,
	}
}

func runCorpus(ctx context.Context, env *pipeline.Env) error {
	cfg := env.Config
	c := env.Counters("corpus")
	opts := CorpusOptions{IDField: cfg.IDField, TextField: cfg.TextField, TitleField: cfg.TitleField, SkipInvalid: cfg.SkipInvalid}
	var meta dataset.CorpusMeta
	hadMeta, err := env.Store.GetJSON(dataset.MetaCorpus, &meta)
	if err != nil {
		return err
	}
	bar := env.Progress.Start("corpus", 0)
	defer bar.Finish()
	skipped := map[string]int64{}
	batch := env.Store.NewBatch()
	defer batch.Cancel()
	// The passage texts file is written as the corpus is read, unless the
	// store has one for the corpus it holds (a run that resumes).
	var pw *passageFileWriter
	if !hadMeta || !hasPassageFile(env.Store.Path(), meta) {
		if pw, err = newPassageFileWriter(filepath.Join(env.Store.Path(), "index")); err != nil {
			return err
		}
		defer pw.abort() // removes the temporary file unless committed
	}
	n := 0
	sum, err := ReadCorpus(ctx, cfg.Corpus, opts, skipped, func(r Record) error {
		n++
		bar.Add(1)
		if pw != nil {
			if err := pw.add(r.ID, r.Title, r.Text); err != nil {
				return err
			}
		}
		p := dataset.Passage{Title: r.Title, Text: r.Text, Line: r.Line, Hash: pipeline.Hash64(r.Title, r.Text)}
		if hadMeta {
			var old dataset.Passage
			ok, err := env.Store.GetJSON(dataset.DocKey(r.ID), &old)
			if err != nil {
				return err
			}
			if ok && old.Hash != p.Hash {
				return fmt.Errorf("%s:%d: passage %q has changed since store %s was made from this corpus (old text from line %d); use a new --store, or the old corpus file",
					cfg.Corpus, r.Line, r.ID, env.Store.Path(), old.Line)
			}
			if ok && old.Line == p.Line {
				return nil
			}
		}
		return batch.PutJSON(dataset.DocKey(r.ID), p)
	})
	if err != nil {
		return err
	}
	if hadMeta && meta.SHA256 != sum {
		// Passages were added or removed: the doc table must hold exactly this corpus.
		if err := dropMissing(ctx, env, cfg, opts); err != nil {
			return err
		}
	}
	if err := batch.Flush(); err != nil {
		return err
	}
	c.Add("passages", int64(n))
	for k, v := range skipped {
		c.Add("skipped_"+k, v)
	}
	now := dataset.CorpusMeta{SHA256: sum, Passages: n}
	if pw != nil {
		if _, err := pw.commit(env.Store.Path(), now); err != nil {
			return err
		}
	} else if !hasPassageFile(env.Store.Path(), now) { // the corpus changed
		if err := writePassageFile(ctx, env.Store, now); err != nil {
			return err
		}
	}
	return env.Store.PutJSON(dataset.MetaCorpus, now)
}

// dropMissing deletes stored passages that are not in the corpus file.
func dropMissing(ctx context.Context, env *pipeline.Env, cfg *pipeline.Config, opts CorpusOptions) error {
	ids := map[string]bool{}
	if _, err := ReadCorpus(ctx, cfg.Corpus, opts, map[string]int64{}, func(r Record) error { ids[r.ID] = true; return nil }); err != nil {
		return err
	}
	var gone []string
	if err := env.Store.Scan(pipeline.PrefixDoc, func(k string, _ []byte) error {
		if !ids[k] {
			gone = append(gone, k)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range gone {
		if err := env.Store.Delete(dataset.DocKey(k)); err != nil {
			return err
		}
	}
	return nil
}
