package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// commitFiles writes one export of files (name -> content) into out the
// way exportFrom does (data, card, manifest listing the data files'
// sha256), calling step after each change the commit makes to OUT.
func commitFiles(t *testing.T, out string, files map[string]string, step func()) {
	t.Helper()
	set, err := newFileSet(out, "", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	}) {
		if err := set.writeFile(name, []byte(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := json.Marshal(manifestHead{SynthqVersion: Version, Files: set.dataFiles()})
	if err := set.writeFile("manifest.json", m); err != nil {
		t.Fatal(err)
	}
	set.step = step
	if err := set.commit(); err != nil {
		t.Fatal(err)
	}
}

// filesIn lists the files under dir, relative and slash-separated.
func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	var got []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(got)
	return got
}

// manifestAgrees says what is wrong when OUT holds a manifest whose data
// files are not on disk with the listed sha256 ("" when it agrees or there
// is no manifest).
func manifestAgrees(out string) string {
	b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		return ""
	}
	var m manifestHead
	if err := json.Unmarshal(b, &m); err != nil {
		return err.Error()
	}
	for _, f := range m.Files {
		data, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(f.Name)))
		sum := sha256.Sum256(data)
		if err != nil || hex.EncodeToString(sum[:]) != f.SHA256 {
			return fmt.Sprintf("the manifest lists %s, which is not on disk with its sha256", f.Name)
		}
	}
	return ""
}

// At every moment of a commit (what a kill would leave) a manifest in OUT
// agrees with the data beside it, OUT holds nothing the next export would
// call foreign, and the next export cleans up whatever the killed one had
// moved or left in its staging folder.
func TestCommitKilledAtAnyStep(t *testing.T) {
	out := t.TempDir()
	commitFiles(t, out, map[string]string{"train.jsonl": "a1", "dev.jsonl": "b1", "README.md": "card1"}, nil)
	steps := 0
	commitFiles(t, out, map[string]string{"train.arrow": "A2", "dev/dev.arrow": "B2", "train.jsonl": "a2", "README.md": "card2"}, func() {
		steps++
		if msg := manifestAgrees(out); msg != "" {
			t.Errorf("step %d: %s", steps, msg)
		}
		killed := filepath.Join(t.TempDir(), "out")
		if err := os.CopyFS(killed, os.DirFS(out)); err != nil {
			t.Fatal(err)
		}
		if err := CheckOut(killed, "", false); err != nil {
			t.Errorf("step %d: the next export refuses what a killed one left: %v", steps, err)
			return
		}
		commitFiles(t, killed, map[string]string{"train.parquet": "P3", "README.md": "card3"}, nil)
		if got, want := filesIn(t, killed), []string{"README.md", "manifest.json", "train.parquet"}; !slices.Equal(got, want) {
			t.Errorf("step %d: after the next export OUT holds %v, want %v", steps, got, want)
		}
	})
	if steps < 5 {
		t.Fatalf("the commit made %d steps", steps)
	}
	if got, want := filesIn(t, out), []string{"README.md", "dev/dev.arrow", "manifest.json", "train.arrow", "train.jsonl"}; !slices.Equal(got, want) {
		t.Errorf("after the second export OUT holds %v, want %v", got, want)
	}
}
