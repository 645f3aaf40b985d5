package stages

import "runtime/debug"

// returnGarbage collects the heap and returns the memory freed to the
// system at once, for the end of a phase that leaves hundreds of MB of
// garbage behind (the selection's MinHash signatures, the BM25 builder).
// Without it the Go runtime keeps that memory mapped until its scavenger
// gets to it, minutes later, and the next phase's heap grows on top of it:
// the peak RSS of a 1M-passage run is such a moment (BENCHMARKS.md
// "Millions of passages"). Cost: one full collection, about 0.1–0.5 s of CPU
// with the ~0.5 GB live heap of a 1M-passage run.
func returnGarbage() { debug.FreeOSMemory() }
