package stages

import (
	"math"
	"testing"
)

// FuzzStoredVector feeds any bytes as a cached vector record (vec/…): a
// record accepted is whole float32s, every one finite, of unit length, and
// encodes back to the same bytes; anything else is refused (embedded
// again), never a panic.
func FuzzStoredVector(f *testing.F) {
	f.Add(encodeVec([]float32{0.6, 0.8}))
	f.Add(encodeVec([]float32{1, 0, 0, 0}))
	f.Add(encodeVec([]float32{float32(math.Inf(1)), float32(math.NaN())})) // a denormal normalised in float32
	f.Add(encodeVec([]float32{0, 0}))
	f.Add([]byte{0, 0, 128, 63, 1, 2}) // 1.0 and two stray bytes
	f.Fuzz(func(t *testing.T, b []byte) {
		v, ok := storedVec(b)
		if !ok {
			return
		}
		if len(b)%4 != 0 || len(v) != len(b)/4 || len(v) == 0 {
			t.Fatalf("accepted %d bytes as %d entries", len(b), len(v))
		}
		var s float64
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("accepted a vector holding %v", x)
			}
			s += float64(x) * float64(x)
		}
		if math.Abs(s-1) > 1e-3 {
			t.Fatalf("accepted a vector of norm² %v", s)
		}
		if string(encodeVec(v)) != string(b) {
			t.Fatal("an accepted vector does not encode back to its record")
		}
	})
}

// FuzzScoreRecord feeds any bytes as a cached teacher score record
// (score/…): decoding never panics, and a record that decodes holds
// exactly what encodeScores writes of it back (same ids, same score bits).
func FuzzScoreRecord(f *testing.F) {
	f.Add(encodeScores(map[string]float32{"kb001": 3.25, "kb002": -1.5}))
	f.Add(encodeScores(map[string]float32{"a": float32(math.NaN())}))
	f.Add(encodeScores(map[string]float32{}))
	f.Add([]byte{5, 'a', 'b'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		m := map[string]float32{}
		if err := decodeScores(b, m); err != nil {
			return
		}
		back := map[string]float32{}
		if err := decodeScores(encodeScores(m), back); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if len(back) != len(m) {
			t.Fatalf("%d scores, %d after a round trip", len(m), len(back))
		}
		for id, x := range m {
			if y, ok := back[id]; !ok || math.Float32bits(x) != math.Float32bits(y) {
				t.Fatalf("score of %q: %v, %v after a round trip", id, x, y)
			}
		}
	})
}
