//go:build unix

package pipeline

import (
	"os"
	"syscall"
)

// lockDir takes the lock Badger takes on a store folder (flock on the
// folder itself: shared for a reader, exclusive for a writer), without
// waiting. The returned function releases it.
func lockDir(dir string, shared bool) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX | syscall.LOCK_NB
	if shared {
		how = syscall.LOCK_SH | syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
