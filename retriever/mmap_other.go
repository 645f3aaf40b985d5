//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package retriever

import (
	"io"
	"os"
)

// mapFile reads f whole into memory where memory mapping is not wired up.
func mapFile(f *os.File, size int) ([]byte, func() error, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, nil, err
	}
	return b, func() error { return nil }, nil
}
