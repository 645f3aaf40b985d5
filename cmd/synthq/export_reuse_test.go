package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A re-run that changes nothing keeps the data files it finds in OUT (they
// are already the bytes the store gives) and writes only the card and the
// manifest; a file edited or removed behind synthq's back, or a changed
// setting, writes the set again, and the same settings give the same bytes.
func TestReRunKeepsUnchangedExport(t *testing.T) {
	out := t.TempDir()
	run := func(extra ...string) {
		t.Helper()
		args := append([]string{"run", "--offline", "--corpus", corpus, "--out", out, "--quiet",
			"--min-candidates", "5", "--min-top-percentile", "10", "--format", "arrow,parquet,jsonl"}, extra...)
		if code, msg := synthq(t, context.Background(), args...); code != 0 {
			t.Fatalf("run %v: exit %d: %s", extra, code, msg)
		}
	}
	files := func() map[string]string {
		t.Helper()
		got := map[string]string{}
		for _, f := range manifestOf(t, out).Files {
			b, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(f.Name)))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			if int64(len(b)) != f.Bytes || hex.EncodeToString(sum[:]) != f.SHA256 {
				t.Fatalf("manifest lists %s as %d bytes, sha256 %s; the file has %d bytes, sha256 %x", f.Name, f.Bytes, f.SHA256, len(b), sum)
			}
			got[f.Name] = string(b)
		}
		return got
	}
	same := func(what string, a, b map[string]string) {
		t.Helper()
		if len(a) != len(b) {
			t.Fatalf("%s: %d files, want %d", what, len(a), len(b))
		}
		for name := range b {
			if a[name] != b[name] {
				t.Errorf("%s: %s differs", what, name)
			}
		}
	}
	kept := func(what string, want bool) {
		t.Helper()
		if got := manifestOf(t, out).FilesKept; got != want {
			t.Errorf("%s: files_kept %v, want %v", what, got, want)
		}
	}

	run()
	first := files()
	if len(first) != 6 {
		t.Fatalf("manifest lists %d data files, want 6 (train and dev × 3 formats)", len(first))
	}
	kept("first run", false)
	trainArrow := filepath.Join(out, "train.arrow")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(trainArrow, old, old); err != nil {
		t.Fatal(err)
	}

	run()
	kept("cached re-run", true)
	same("cached re-run", files(), first)
	if fi, err := os.Stat(trainArrow); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("train.arrow was written again by a re-run that changed nothing")
	}

	// An edit that keeps the size is seen by its sha256.
	b := []byte(first["train.arrow"])
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(trainArrow, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run()
	kept("after an edit of train.arrow", false)
	same("after an edit of train.arrow", files(), first)

	if err := os.Remove(filepath.Join(out, "dev.parquet")); err != nil {
		t.Fatal(err)
	}
	run()
	kept("after dev.parquet was removed", false)
	same("after dev.parquet was removed", files(), first)

	// Another setting: another set, then back to the first bytes.
	run("--list-size", "5")
	kept("--list-size 5", false)
	if files()["train.arrow"] == first["train.arrow"] {
		t.Error("--list-size 5 kept the lists of 10")
	}
	run()
	kept("back to the first settings", false)
	same("back to the first settings", files(), first)
	run()
	kept("re-run of the first settings", true)
}

// A store exports the same bytes whether label and export read the
// passages from its passage texts file or, moved without it, from the
// store; a run on it writes the file again.
func TestExportSameBytesWithoutPassageFile(t *testing.T) {
	out := t.TempDir()
	_, _, args := fakeArgs(t, "tei", out)
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("run: exit %d: %s", code, msg)
	}
	store := filepath.Join(out, "store")
	files, _ := filepath.Glob(filepath.Join(store, "index", "passages-*.txt"))
	if len(files) != 1 {
		t.Fatalf("passage texts files in the store: %v, want one", files)
	}
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	again := t.TempDir()
	if code, msg := synthq(t, context.Background(), "export", "--quiet", "--store", store, "--out", again); code != 0 {
		t.Fatalf("export without the file: exit %d: %s", code, msg)
	}
	sameFiles(t, out, again)
	if code, msg := synthq(t, context.Background(), args...); code != 0 {
		t.Fatalf("run again: exit %d: %s", code, msg)
	}
	if f, _ := filepath.Glob(filepath.Join(store, "index", "passages-*.txt")); len(f) != 1 {
		t.Errorf("after a run on the store: passage texts files %v, want one", f)
	}
	sameFiles(t, again, out)
}
