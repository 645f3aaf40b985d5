package retriever

import (
	"errors"
	"fmt"
	"os"
)

// mapPath opens the index file at path and maps it whole, read-only (see
// mapFile); the file is closed, the mapping stays until unmap. what names
// the file in errors ("bm25 index", "ivf index"). The files are written in
// little-endian order and their arrays used in place, so a big-endian
// machine is refused.
func mapPath(path, what string) ([]byte, func() error, error) {
	if !littleEndian() {
		return nil, nil, errors.New(what + ": big-endian machines are not supported")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	b, unmap, err := mapFile(f, int(fi.Size()))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: mapping: %w", what, path, err)
	}
	return b, unmap, nil
}
