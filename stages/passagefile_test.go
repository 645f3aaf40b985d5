package stages

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/synthq/synthq/dataset"
	"github.com/synthq/synthq/pipeline"
)

// writePassagesCorpus writes passages (id -> [title, text]) as a JSONL corpus, in
// the order of ids.
func writePassagesCorpus(t *testing.T, path string, ids []string, ps map[string][2]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(f)
	for _, id := range ids {
		enc.Encode(map[string]string{"_id": id, "title": ps[id][0], "text": ps[id][1]})
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// corpusEnv runs the corpus stage on corpus into the store at dir.
func corpusEnv(t *testing.T, dir, corpus string) *pipeline.Env {
	t.Helper()
	cfg := pipeline.DefaultConfig()
	cfg.Corpus, cfg.Out = corpus, dir
	st, err := pipeline.OpenStore(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	env := &pipeline.Env{Store: st, Config: cfg, Progress: pipeline.NewProgress(io.Discard, false, true)}
	if err := pipeline.Run(context.Background(), env, []pipeline.Stage{CorpusStage()}); err != nil {
		t.Fatal(err)
	}
	return env
}

// readAll reads ids (sorted) through src.
func readAll(t *testing.T, src *passageSource, ids []string) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	if err := src.readEach(ids, func(j int, p dataset.Passage) error {
		out[ids[j]] = [2]string{p.Title, p.Text}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func corpusMeta(t *testing.T, st *pipeline.Store) dataset.CorpusMeta {
	t.Helper()
	var m dataset.CorpusMeta
	if ok, err := st.GetJSON(dataset.MetaCorpus, &m); err != nil || !ok {
		t.Fatalf("corpus meta: %v %v", ok, err)
	}
	return m
}

// The corpus stage writes the passage texts file beside the store; label
// and export read the same passages from it as from the store (titles,
// texts, any bytes), and a resumed run keeps it as it is.
func TestPassageFileWrittenByCorpusStage(t *testing.T) {
	dir := t.TempDir()
	ps := map[string][2]string{
		"b": {"", "text with no title"}, "a": {"A title", "naïve café — ünïcödé 😀"},
		"c/3": {"t", "x"}, "10": {"ten", "passage ten"},
	}
	order := []string{"b", "a", "c/3", "10"} // not in id order
	corpus := filepath.Join(dir, "corpus.jsonl")
	writePassagesCorpus(t, corpus, order, ps)
	env := corpusEnv(t, dir, corpus)
	st := env.Store
	meta := corpusMeta(t, st)
	path := passageFilePath(st.Path(), meta)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no passage texts file: %v", err)
	}
	if fi.Mode().Perm()&0o044 != 0o044 {
		t.Errorf("mode %v: not readable by the processes that share a prepared folder", fi.Mode())
	}
	ids := []string{"10", "a", "b", "c/3"}
	withFile := openPassages(st, nil, t.Errorf)
	defer withFile.close()
	if withFile.file == nil {
		t.Fatal("the passage texts file is not used")
	}
	fromStore := readAll(t, &passageSource{st: st}, ids)
	if got := readAll(t, withFile, ids); !reflect.DeepEqual(got, ps) || !reflect.DeepEqual(fromStore, ps) {
		t.Errorf("from the file %q, from the store %q, want %q", got, fromStore, ps)
	}
	// A resumed run (same corpus) keeps the file as it is.
	if err := pipeline.Run(context.Background(), env, []pipeline.Stage{CorpusStage()}); err != nil {
		t.Fatal(err)
	}
	if fi2, err := os.Stat(path); err != nil || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Errorf("a resumed run wrote the file again (%v)", err)
	}
}

// A changed corpus gets a file of its own (the old one removed, never
// read for the new corpus); a store moved without its file gets it again
// from the next run, and reads the store meanwhile.
func TestPassageFileFollowsTheCorpus(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.jsonl")
	ps := map[string][2]string{"a": {"", "first text"}, "b": {"", "second text"}}
	writePassagesCorpus(t, corpus, []string{"a", "b"}, ps)
	env := corpusEnv(t, dir, corpus)
	st := env.Store
	old := passageFilePath(st.Path(), corpusMeta(t, st))

	// Passage b removed, c added: a new corpus.
	ps2 := map[string][2]string{"a": {"", "first text"}, "c": {"", "third text"}}
	writePassagesCorpus(t, corpus, []string{"a", "c"}, ps2)
	if err := pipeline.Run(context.Background(), env, []pipeline.Stage{CorpusStage()}); err != nil {
		t.Fatal(err)
	}
	meta := corpusMeta(t, st)
	path := passageFilePath(st.Path(), meta)
	if path == old {
		t.Fatal("a changed corpus kept the passage texts file's name")
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the old corpus's file is still there (%v)", err)
	}
	src := openPassages(st, nil, t.Errorf)
	if src.file == nil {
		t.Fatal("no passage texts file for the new corpus")
	}
	if got := readAll(t, src, []string{"a", "c"}); !reflect.DeepEqual(got, ps2) {
		t.Errorf("read %q, want %q", got, ps2)
	}
	src.close()

	// Another corpus's file put in its place is not read.
	pf, err := openPassageFile(path, dataset.CorpusMeta{SHA256: meta.SHA256, Passages: meta.Passages + 1})
	if err == nil {
		pf.Close()
		t.Error("a file written for another corpus was opened")
	}

	// Moved without its file: reads go to the store; the next run writes it.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	src = openPassages(st, nil, t.Errorf)
	if src.file != nil {
		t.Fatal("a missing file was opened")
	}
	if got := readAll(t, src, []string{"a", "c"}); !reflect.DeepEqual(got, ps2) {
		t.Errorf("from the store: %q, want %q", got, ps2)
	}
	if err := pipeline.Run(context.Background(), env, []pipeline.Stage{CorpusStage()}); err != nil {
		t.Fatal(err)
	}
	if !hasPassageFile(st.Path(), meta) {
		t.Error("the next run did not write the file again")
	}
}

// A file cut short (a copy interrupted), damaged in its tables or its
// texts, or left half-written by a killed writer is never read as
// passages: opening refuses it, or the damaged passage is read from the
// store; the next writer removes the killed one's temporary file.
func TestPassageFileNeverReadsGarbage(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.jsonl")
	ps := map[string][2]string{"a": {"ta", "alpha text"}, "b": {"tb", "beta text"}}
	writePassagesCorpus(t, corpus, []string{"a", "b"}, ps)
	env := corpusEnv(t, dir, corpus)
	st := env.Store
	meta := corpusMeta(t, st)
	path := passageFilePath(st.Path(), meta)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flip := func(at int) []byte {
		b := append([]byte(nil), good...)
		b[at] ^= 0x20
		return b
	}
	for name, b := range map[string][]byte{
		"cut short":         good[:len(good)-3],
		"grown":             append(append([]byte(nil), good...), 0),
		"a table byte":      flip(len(good) - 2),
		"the header's fp":   flip(45),
		"the passage count": flip(16),
	} {
		write(b)
		if pf, err := openPassageFile(path, meta); err == nil {
			pf.Close()
			t.Errorf("%s: opened", name)
		}
	}
	// A byte of a text: the file opens, that passage comes from the store.
	write(flip(passageHeaderSize + 8))
	src := openPassages(st, nil, t.Errorf)
	if src.file == nil {
		t.Fatal("a file damaged in one text was not opened")
	}
	if got := readAll(t, src, []string{"a", "b"}); !reflect.DeepEqual(got, ps) {
		t.Errorf("read %q, want %q", got, ps)
	}
	src.close()

	// A writer killed before its commit leaves only a temporary file, which
	// no reader takes and the next writer removes.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	w, err := newPassageFileWriter(filepath.Join(st.Path(), "index"))
	if err != nil {
		t.Fatal(err)
	}
	w.add("a", "ta", "alpha text")
	w.w.Flush()
	killed := w.tmp
	w.f.Close() // killed: neither committed nor aborted
	if src := openPassages(st, nil, t.Errorf); src.file != nil {
		t.Error("a killed writer's file was opened")
	}
	if err := writePassageFile(context.Background(), st, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(killed); !os.IsNotExist(err) {
		t.Errorf("the killed writer's temporary file is still there (%v)", err)
	}
	src = openPassages(st, nil, t.Errorf)
	defer src.close()
	if src.file == nil {
		t.Fatal("writePassageFile wrote no usable file")
	}
	if got := readAll(t, src, []string{"a", "b"}); !reflect.DeepEqual(got, ps) {
		t.Errorf("read %q, want %q", got, ps)
	}
}
