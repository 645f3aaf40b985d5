//go:build !linux

package retriever

import "time"

// threadCPU is not measured here: CPU figures read 0.
func threadCPU() time.Duration { return 0 }

// processCPU is not measured here: CPU figures read 0.
func processCPU() time.Duration { return 0 }
