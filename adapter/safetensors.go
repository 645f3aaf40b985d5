package adapter

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
)

// TensorName is the name of the matrix in adapter.safetensors: the key of a
// torch.nn.Linear's weight inside sentence-transformers' Dense module, so
// Dense(d, d, bias=False).load_state_dict(load_file(path)) takes it as is.
const TensorName = "linear.weight"

// maxHeader bounds the JSON header a reader accepts (safetensors' own
// limit is 100 MB).
const maxHeader = 100 << 20

// WriteSafetensors writes w (dim×dim float32, row-major out × in) in the
// safetensors format: an 8-byte little-endian header length, a JSON header
// naming the tensor's dtype, shape and byte range and a __metadata__ map of
// strings, padded with spaces to a multiple of 8 bytes, then the
// little-endian floats. The same inputs give the same bytes (JSON object
// keys are sorted).
func WriteSafetensors(out io.Writer, w []float32, dim int, meta map[string]string) error {
	if len(w) != dim*dim {
		return fmt.Errorf("safetensors: %d floats for a %d×%d matrix", len(w), dim, dim)
	}
	type tensor struct {
		Dtype       string   `json:"dtype"`
		Shape       []int    `json:"shape"`
		DataOffsets [2]int64 `json:"data_offsets"`
	}
	header := map[string]any{
		TensorName: tensor{Dtype: "F32", Shape: []int{dim, dim}, DataOffsets: [2]int64{0, int64(4 * len(w))}},
	}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	h, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("safetensors header: %w", err)
	}
	if pad := (8 - len(h)%8) % 8; pad > 0 {
		h = append(h, bytes.Repeat([]byte{' '}, pad)...)
	}
	buf := make([]byte, 8+len(h)+4*len(w))
	binary.LittleEndian.PutUint64(buf, uint64(len(h)))
	copy(buf[8:], h)
	data := buf[8+len(h):]
	for i, x := range w {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
	}
	_, err = out.Write(buf)
	return err
}

// Adapter is a loaded adapter file.
type Adapter struct {
	Dim    int
	Matrix []float32 // Dim×Dim row-major (out × in)
	Meta   map[string]string
}

// Apply transforms a query vector (see the package function Apply).
func (a *Adapter) Apply(q []float32) []float32 { return Apply(a.Matrix, q) }

// ReadSafetensors reads an adapter file written by WriteSafetensors (or by
// Python's safetensors with one F32 square tensor named TensorName). Errors
// name the file and what is wrong with it.
func ReadSafetensors(path string) (*Adapter, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read adapter: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("adapter %s: not a synthq adapter safetensors file: %s", path, fmt.Sprintf(format, args...))
	}
	if len(b) < 8 {
		return nil, bad("%d bytes", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > maxHeader || n > uint64(len(b)-8) {
		return nil, bad("header of %d bytes in a file of %d", n, len(b))
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &header); err != nil {
		return nil, bad("header: %v", err)
	}
	a := &Adapter{Meta: map[string]string{}}
	if m, ok := header["__metadata__"]; ok {
		if err := json.Unmarshal(m, &a.Meta); err != nil {
			return nil, bad("__metadata__: %v", err)
		}
	}
	raw, ok := header[TensorName]
	if !ok {
		return nil, bad("no tensor %q", TensorName)
	}
	var t struct {
		Dtype       string   `json:"dtype"`
		Shape       []int    `json:"shape"`
		DataOffsets [2]int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, bad("tensor %s: %v", TensorName, err)
	}
	if t.Dtype != "F32" || len(t.Shape) != 2 || t.Shape[0] != t.Shape[1] || t.Shape[0] <= 0 {
		return nil, bad("tensor %s is %s %v, want F32 [d, d]", TensorName, t.Dtype, t.Shape)
	}
	data := b[8+n:]
	d := t.Shape[0]
	lo, hi := t.DataOffsets[0], t.DataOffsets[1]
	if lo < 0 || hi > int64(len(data)) || hi-lo != int64(4*d*d) {
		return nil, bad("tensor %s: bytes %d..%d of %d for %d floats", TensorName, lo, hi, len(data), d*d)
	}
	a.Dim, a.Matrix = d, make([]float32, d*d)
	for i := range a.Matrix {
		a.Matrix[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[lo+int64(4*i):]))
	}
	return a, nil
}
