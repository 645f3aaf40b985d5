package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// stagingDir is the folder inside OUT where an export is written before it
// is moved into place: same filesystem as the final names, so every move
// is a rename.
const stagingDir = ".synthq-export.tmp"

// ownedNames are the names synthq's export writes into OUT, relative to
// OUT: the only files it ever removes there. Anything else in OUT (the
// store, report.html, a user's files) is never touched.
func ownedNames() []string {
	names := []string{"manifest.json", "README.md"}
	for _, split := range []string{"train", "dev"} {
		for _, format := range Formats {
			names = append(names, split+"."+format, split+"/"+split+"."+format)
		}
	}
	return names
}

// fileSet writes one export as a whole: every file goes into OUT's staging
// folder and is synced; commit then moves them into place, manifest.json
// last, and removes the files an earlier export wrote that this one did
// not. Until commit, OUT holds the previous complete set unchanged.
type fileSet struct {
	out, stage string
	files      []*os.File
	names      []string      // relative to OUT, in creation order
	sums       []*stagedFile // each staged file's size and sha256, as names
	kept       []string      // files of the previous export kept as they are
}

// stagedFile is a staged file's writer: it counts the bytes and hashes them
// on their way to the file, so the manifest can list every file's size and
// sha256 without reading it again.
type stagedFile struct {
	f     *os.File
	h     hash.Hash
	bytes int64
}

func (w *stagedFile) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.bytes += int64(n)
	return n, err
}

// ExportFile is one data file of an export, as the manifest lists it.
type ExportFile struct {
	Name   string `json:"name"` // relative to OUT, slash-separated
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// dataFiles lists the staged files other than the card and the manifest,
// sorted by name.
func (s *fileSet) dataFiles() []ExportFile {
	var out []ExportFile
	for i, name := range s.names {
		if name == "README.md" || name == "manifest.json" {
			continue
		}
		out = append(out, ExportFile{Name: name, Bytes: s.sums[i].bytes, SHA256: hex.EncodeToString(s.sums[i].h.Sum(nil))})
	}
	slices.SortFunc(out, func(a, b ExportFile) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// keep marks files of the previous export, already in OUT, as part of this
// one: commit neither moves nor removes them.
func (s *fileSet) keep(names ...string) { s.kept = append(s.kept, names...) }

// newFileSet prepares the staging folder of out, removing one a killed
// export left behind.
func newFileSet(out string) (*fileSet, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("create output dir: %w", err)
	}
	s := &fileSet{out: out, stage: filepath.Join(out, stagingDir)}
	if err := os.RemoveAll(s.stage); err != nil {
		return nil, fmt.Errorf("remove stale staging dir: %w", err)
	}
	if err := os.Mkdir(s.stage, 0o755); err != nil {
		return nil, fmt.Errorf("create staging dir: %w", err)
	}
	return s, nil
}

// create opens the staging file of name (relative to OUT, slash-separated).
func (s *fileSet) create(name string) (io.Writer, error) {
	p := filepath.Join(s.stage, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	f, err := os.Create(p)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	w := &stagedFile{f: f, h: sha256.New()}
	s.files = append(s.files, f)
	s.names = append(s.names, name)
	s.sums = append(s.sums, w)
	return w, nil
}

// writeFile stages a whole file.
func (s *fileSet) writeFile(name string, data []byte) error {
	f, err := s.create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// commit syncs and closes every staged file, checks that each can replace
// its final name, renames them into OUT (manifest.json last, then OUT is
// synced), and removes the owned names this export did not write.
func (s *fileSet) commit() error {
	for i, f := range s.files {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", s.names[i], err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("close %s: %w", s.names[i], err)
		}
	}
	s.files = nil
	// Refuse before moving anything if a final name is taken by a folder
	// (or a folder's name by a file): the previous set stays whole.
	for _, name := range s.names {
		final := filepath.Join(s.out, filepath.FromSlash(name))
		if fi, err := os.Stat(final); err == nil && fi.IsDir() {
			return fmt.Errorf("export: cannot replace %s: it is a directory", final)
		}
		if dir := filepath.Dir(final); dir != s.out {
			if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
				return fmt.Errorf("export: cannot create folder %s: a file has its name", dir)
			}
		}
	}
	order := slices.Clone(s.names)
	slices.SortStableFunc(order, func(a, b string) int { // manifest last
		return boolInt(a == "manifest.json") - boolInt(b == "manifest.json")
	})
	for _, name := range order {
		if name == "manifest.json" {
			if err := syncDir(s.out); err != nil {
				return err
			}
		}
		final := filepath.Join(s.out, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Dir(final), err)
		}
		if err := os.Rename(filepath.Join(s.stage, filepath.FromSlash(name)), final); err != nil {
			return fmt.Errorf("move %s into place: %w", name, err)
		}
		if dir := filepath.Dir(final); dir != s.out {
			if err := syncDir(dir); err != nil {
				return err
			}
		}
	}
	if err := syncDir(s.out); err != nil {
		return err
	}
	if err := s.removeStale(); err != nil {
		return err
	}
	return os.RemoveAll(s.stage)
}

// removeStale removes the owned names of OUT this export did not write,
// and the per-split folders they leave empty.
func (s *fileSet) removeStale() error {
	for _, name := range ownedNames() {
		if slices.Contains(s.names, name) || slices.Contains(s.kept, name) {
			continue
		}
		p := filepath.Join(s.out, filepath.FromSlash(name))
		fi, err := os.Lstat(p)
		if err != nil || fi.IsDir() {
			continue // absent, or not a file synthq wrote
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", name, err)
		}
		if dir, _, ok := strings.Cut(name, "/"); ok {
			os.Remove(filepath.Join(s.out, dir)) // only succeeds when empty
		}
	}
	return nil
}

// abort closes and removes everything staged; OUT keeps the previous set.
func (s *fileSet) abort() {
	for _, f := range s.files {
		f.Close()
	}
	s.files = nil
	os.RemoveAll(s.stage)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
