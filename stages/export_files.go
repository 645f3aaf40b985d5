package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// ownedNames are the names synthq's export may write into OUT, relative to
// OUT. It removes or replaces one only when its earlier manifest lists it
// (see outdir.go); anything else in OUT (the store, report.html, a user's
// files) is never touched.
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
// last, and removes the files an earlier export wrote (its manifest lists
// them) that this one did not. Until commit, OUT holds the previous
// complete set unchanged; during commit OUT holds no manifest, so a
// manifest in OUT always lists the data files beside it, sha256 and all.
type fileSet struct {
	out, stage string
	previous   []string // files of OUT an earlier export wrote (see readOut)
	files      []*os.File
	names      []string      // relative to OUT, in creation order
	sums       []*stagedFile // each staged file's size and sha256, as names
	kept       []string      // files of the previous export kept as they are
	// step, when set (tests), is called after each change commit makes
	// to OUT: what a kill at that moment would leave.
	step func()
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

// newFileSet checks out (CheckOut: refused when it holds files synthq did
// not write, unless force, or a link where synthq writes; store is the
// store's folder, which may lie inside out) and prepares its staging
// folder, removing one a killed export left behind (only one with
// synthq's marker).
func newFileSet(out, store string, force bool) (*fileSet, error) {
	if err := CheckOut(out, store, force); err != nil {
		return nil, err
	}
	prev, err := readOut(out)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("create output dir: %w", err)
	}
	s := &fileSet{out: out, stage: filepath.Join(out, stagingDir), previous: prev.previous}
	if prev.staging {
		if err := os.RemoveAll(s.stage); err != nil {
			return nil, fmt.Errorf("remove the staging folder of a killed export: %w", err)
		}
	}
	if err := os.Mkdir(s.stage, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("export to %s: %s is there and is not synthq's staging folder (no %s in it): move it away", out, s.stage, stagingMarker)
		}
		return nil, fmt.Errorf("create staging dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.stage, stagingMarker), []byte("synthq export staging folder: removed by the next export\n"), 0o644); err != nil {
		os.RemoveAll(s.stage)
		return nil, fmt.Errorf("create staging dir: %w", err)
	}
	return s, nil
}

// create opens the staging file of name (relative to OUT, slash-separated),
// a new file (O_EXCL) in the staging folder this export made.
func (s *fileSet) create(name string) (io.Writer, error) {
	if !validName(name) {
		return nil, fmt.Errorf("create %s: not a name inside the output folder", name)
	}
	p := filepath.Join(s.stage, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
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
// its final name (no folder or link in the way), writes the list of what
// it moves into the staging folder, removes OUT's old manifest, renames
// the files into OUT (manifest.json last; OUT is synced before and after)
// and removes the files the earlier manifest listed that this export did
// not write. A kill midway leaves OUT without a manifest (never a manifest
// beside data it does not list) and the list in the staging folder; the
// next export removes that folder.
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
	// (or a folder's name by a file), or a link is on the way: the
	// previous set stays whole.
	for _, name := range s.names {
		final := filepath.Join(s.out, filepath.FromSlash(name))
		if err := noLinkUnder(s.out, final); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if fi, err := os.Lstat(final); err == nil && fi.IsDir() {
			return fmt.Errorf("export: cannot replace %s: it is a directory", final)
		}
		if dir := filepath.Dir(final); dir != s.out {
			if fi, err := os.Lstat(dir); err == nil && !fi.IsDir() {
				return fmt.Errorf("export: cannot create folder %s: a file has its name", dir)
			}
		}
	}
	list, err := json.Marshal(commitList{Files: s.names, Previous: s.previous})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := writeSynced(filepath.Join(s.stage, stagingCommit), list); err != nil {
		return err
	}
	if err := syncDir(s.stage); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(s.out, "manifest.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("export: remove the old manifest: %w", err)
	}
	if err := syncDir(s.out); err != nil {
		return err
	}
	s.stepped()
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
		if err := noLinkUnder(s.out, final); err != nil { // a link planted meanwhile
			return fmt.Errorf("export: %w", err)
		}
		if err := os.Rename(filepath.Join(s.stage, filepath.FromSlash(name)), final); err != nil {
			return fmt.Errorf("move %s into place: %w", name, err)
		}
		if dir := filepath.Dir(final); dir != s.out {
			if err := syncDir(dir); err != nil {
				return err
			}
		}
		s.stepped()
	}
	if err := syncDir(s.out); err != nil {
		return err
	}
	if err := s.removeStale(); err != nil {
		return err
	}
	return os.RemoveAll(s.stage)
}

func (s *fileSet) stepped() {
	if s.step != nil {
		s.step()
	}
}

// writeSynced writes a new file and syncs it.
func writeSynced(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// removeStale removes the files an earlier export wrote (its manifest
// listed them) that this export neither wrote nor kept, and the per-split
// folders they leave empty. No other file of OUT is ever removed.
func (s *fileSet) removeStale() error {
	for _, name := range s.previous {
		if slices.Contains(s.names, name) || slices.Contains(s.kept, name) || !validName(name) {
			continue
		}
		p := filepath.Join(s.out, filepath.FromSlash(name))
		if noLinkUnder(s.out, p) != nil {
			continue // never through a link (CheckOut refused one; this one came meanwhile)
		}
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue // absent, or not a file synthq wrote
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", name, err)
		}
		if dir, _, ok := strings.Cut(name, "/"); ok {
			os.Remove(filepath.Join(s.out, dir)) // only succeeds when empty
		}
		s.stepped()
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
