package embed

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
)

// answer is an OpenAI-style embeddings answer of n vectors of dim numbers,
// written as Python servers write float32s (float64 text).
func answer(n, dim int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	}
	var a struct {
		Object string `json:"object"`
		Data   []item `json:"data"`
		Model  string `json:"model"`
	}
	a.Object, a.Model = "list", "fake"
	for i := 0; i < n; i++ {
		v := make([]float64, dim)
		for j := range v {
			v[j] = float64(float32(r.NormFloat64() / 16))
		}
		a.Data = append(a.Data, item{Object: "embedding", Index: i, Embedding: v})
	}
	b, err := json.Marshal(a)
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return b
}

// BenchmarkDecode is the client's decoding of one answer of 64 vectors of
// 256 numbers (the bulk of a dense run's passage embedding on the client).
func BenchmarkDecode(b *testing.B) {
	body := answer(64, 256)
	c := &Client{}
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		if _, err := c.decode(body, 64); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64*256), "ns/number")
}
