//go:build !amd64 || purego

package retriever

// fmaKernel: no assembly kernel on this architecture, or built with the
// purego tag (the Go convention for leaving out assembly; CI tests the
// pure-Go kernel that way).
const fmaKernel = false

// scoreTile sets scores[qi·densePassageBlock + j] to the inner product of
// query qi and row j of block (w rows of dim floats), in pure Go.
func scoreTile(qs [][]float32, block []float32, dim, w int, scores []float32) {
	scoreTileGo(qs, block, dim, w, scores)
}
