package stages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// What synthq owns in an OUT folder, and what it may touch there.
//
// OUT is the user's folder. synthq writes into it only what its export
// writes (manifest.json, README.md, the data files), its staging folder,
// the run's store and report.html. It knows its own files by its earlier
// manifest, which lists every data file it wrote: those, and the card and
// manifest beside that manifest, are the only files an export ever
// replaces or deletes. A folder holding anything else is refused before
// any work, naming the files (--force writes beside them, replacing only
// the names this export writes; it still deletes none of them). No path
// under OUT is followed through a symbolic link: a link where synthq
// would write or read is refused, --force or not.

// stagingMarker is the file that marks a staging folder as synthq's own:
// a folder of the staging folder's name without it is never removed.
const stagingMarker = ".synthq-staging"

// stagingCommit, inside the staging folder, lists what a commit is
// moving into OUT and what the export before it had written: a commit
// killed midway leaves OUT without a manifest but with this list, so the
// files it had moved are still known as synthq's own.
const stagingCommit = ".synthq-commit.json"

type commitList struct {
	Files    []string `json:"files"`
	Previous []string `json:"previous"`
}

// manifestHead is the part of a manifest that says what synthq wrote.
type manifestHead struct {
	SynthqVersion string       `json:"synthq_version"`
	Files         []ExportFile `json:"files"`
}

// outState is what an OUT folder holds of synthq's own.
type outState struct {
	// previous are the files (relative, slash-separated) an earlier export
	// wrote, as its manifest (or a killed commit's list) names them: the
	// only files an export may replace or delete.
	previous []string
	// staging is true when OUT holds a staging folder with synthq's marker.
	staging bool
}

// readOut gathers what OUT holds of synthq's own, reading only. A missing
// OUT holds nothing.
func readOut(out string) (outState, error) {
	var s outState
	seen := map[string]bool{}
	add := func(names ...string) {
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				s.previous = append(s.previous, n)
			}
		}
	}
	b, ok, err := readPlain(out, "manifest.json", 64<<20)
	if err != nil {
		return s, err
	}
	if ok {
		var m manifestHead
		if json.Unmarshal(b, &m) == nil && m.SynthqVersion != "" {
			add("manifest.json", "README.md")
			if m.Files == nil { // a manifest from before the file list: the names an export writes
				for _, n := range ownedNames() {
					if fi, err := os.Lstat(filepath.Join(out, filepath.FromSlash(n))); err == nil && fi.Mode().IsRegular() {
						add(n)
					}
				}
			}
			for _, f := range m.Files {
				if validName(f.Name) {
					add(f.Name)
				}
			}
		}
	}
	stage := filepath.Join(out, stagingDir)
	if fi, err := os.Lstat(stage); err == nil && fi.IsDir() {
		if mfi, err := os.Lstat(filepath.Join(stage, stagingMarker)); err == nil && mfi.Mode().IsRegular() {
			s.staging = true
			if b, ok, err := readPlain(stage, stagingCommit, 64<<20); err == nil && ok {
				var c commitList
				if json.Unmarshal(b, &c) == nil {
					for _, n := range append(c.Files, c.Previous...) {
						if validName(n) {
							add(n)
						}
					}
				}
			}
		}
	}
	return s, nil
}

// validName says whether name (from a manifest) is a plain relative path
// inside OUT.
func validName(name string) bool {
	return name != "" && filepath.IsLocal(filepath.FromSlash(name)) && !strings.Contains(name, "\\")
}

// readPlain reads the regular file name in dir (not through a link), up to
// limit bytes; ok is false when there is no such file.
func readPlain(dir, name string, limit int64) ([]byte, bool, error) {
	p := filepath.Join(dir, name)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", p, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, false, fmt.Errorf("%s is a symbolic link: synthq follows no link inside an output folder", p)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", p, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", p, err)
	}
	return b, true, nil
}

// IsSynthqReport says whether path is an HTML report synthq wrote (its
// head names synthq as the generator).
func IsSynthqReport(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 2048)
	n, _ := io.ReadFull(f, head)
	return bytes.Contains(head[:n], []byte(`<meta name="generator" content="synthq `))
}

// CheckOut says whether an export may write into out, reading only: it is
// called before any work (and again by the export itself). It refuses
//   - a symbolic link at any name the export writes or reads under out
//     (the staging folder, manifest.json, README.md, a data file, the
//     train/ and dev/ folders), --force or not;
//   - unless force, any file in out that is not synthq's own: the files
//     its earlier manifest lists with that card and manifest, its staging
//     folder, the store (store, and out/store when it holds a Badger
//     store) and a report.html synthq wrote.
//
// Both errors name the paths. Cost: one walk of out outside the store.
func CheckOut(out, store string, force bool) error {
	fi, err := os.Stat(out)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("output folder %s: %w", out, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("output folder %s is a file, not a folder", out)
	}
	s, err := readOut(out)
	if err != nil {
		return err
	}
	own := map[string]bool{}
	for _, n := range s.previous {
		own[n] = true
	}
	writes := map[string]bool{stagingDir: true, "train": true, "dev": true}
	for _, n := range ownedNames() {
		writes[n] = true
	}
	skip := map[string]bool{}
	if s.staging {
		skip[stagingDir] = true
	}
	if fi, err := os.Lstat(filepath.Join(out, "store")); err == nil && fi.IsDir() && isBadgerDir(filepath.Join(out, "store")) {
		skip["store"] = true
	}
	if store != "" {
		if rel, ok := inside(out, store); ok {
			skip[rel] = true
		}
	}
	var links, foreign []string
	err = filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("look through %s: %w", out, err)
		}
		if p == out {
			return nil
		}
		rel, _ := filepath.Rel(out, p)
		rel = filepath.ToSlash(rel)
		if skip[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			if writes[rel] || own[rel] {
				links = append(links, p)
			} else {
				foreign = append(foreign, p)
			}
		case d.IsDir():
		case own[rel]:
		case rel == "report.html" && IsSynthqReport(p):
		default:
			foreign = append(foreign, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(links) > 0 {
		return fmt.Errorf("export to %s: %s is a symbolic link: synthq writes nothing through a link inside its output folder; remove the link or choose another --out", out, listPaths(links))
	}
	if len(foreign) > 0 && !force {
		return fmt.Errorf("export to %s: the folder holds files synthq did not write (%s); synthq replaces only what its own manifest lists. "+
			"Choose an empty or new --out, or give --force to write beside them (files of the names synthq writes are then replaced; none is deleted)",
			out, listPaths(foreign))
	}
	return nil
}

// listPaths names up to ten paths.
func listPaths(ps []string) string {
	slices.Sort(ps)
	if len(ps) > 10 {
		return strings.Join(ps[:10], ", ") + fmt.Sprintf(" and %d more", len(ps)-10)
	}
	return strings.Join(ps, ", ")
}

// inside returns target's path relative to dir (slash-separated) when
// target lies inside dir.
func inside(dir, target string) (string, bool) {
	ad, err1 := filepath.Abs(dir)
	at, err2 := filepath.Abs(target)
	if err1 != nil || err2 != nil {
		return "", false
	}
	rel, err := filepath.Rel(ad, at)
	if err != nil || !filepath.IsLocal(rel) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// isBadgerDir says whether dir holds a Badger store (its MANIFEST).
func isBadgerDir(dir string) bool {
	fi, err := os.Lstat(filepath.Join(dir, "MANIFEST"))
	return err == nil && fi.Mode().IsRegular()
}

// noLinkUnder refuses when any folder between out and p (out excluded, p
// included) is a symbolic link, or is not a folder where one is needed:
// writing p must not land outside out.
func noLinkUnder(out, p string) error {
	rel, err := filepath.Rel(out, p)
	if err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("%s is outside %s", p, out)
	}
	cur := out
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link: synthq writes nothing through a link inside its output folder", cur)
		}
	}
	return nil
}
