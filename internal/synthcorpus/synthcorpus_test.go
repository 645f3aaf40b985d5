package synthcorpus

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestWriteSeededBEIR(t *testing.T) {
	o := Options{N: 3000, Vocab: 5000, Topics: 20, Copies: 0.05, Seed: 7}
	var a, b bytes.Buffer
	if err := Write(&a, o); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, o); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same options wrote different corpora")
	}
	o.Seed = 8
	var c bytes.Buffer
	Write(&c, o)
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("another seed wrote the same corpus")
	}
	var docs []map[string]string
	sc := bufio.NewScanner(&a)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var d map[string]string
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		if d["_id"] == "" || d["text"] == "" || d["title"] == "" {
			t.Fatalf("line %d: missing field: %v", len(docs)+1, d)
		}
		docs = append(docs, d)
	}
	if len(docs) != 3000 {
		t.Fatalf("%d passages, want 3000", len(docs))
	}
	// Near copies: passages differing from an earlier one by one word.
	copies := 0
	freq := map[string]int{}
	for i, d := range docs {
		ws := strings.Fields(d["text"])
		if len(ws) < 60 || len(ws) > 120 {
			t.Errorf("passage %d has %d words, want 60–120", i, len(ws))
		}
		for _, w := range ws {
			freq[w]++
		}
	}
	top := ""
	for w, n := range freq {
		if n > freq[top] {
			top = w
		}
	}
	byLen := map[int][]int{}
	for i, d := range docs {
		n := len(strings.Fields(d["text"]))
		for _, j := range byLen[n] {
			if oneWordApart(docs[j]["text"], d["text"]) {
				copies++
				break
			}
		}
		byLen[n] = append(byLen[n], i)
	}
	if copies < 100 || copies > 200 {
		t.Errorf("%d near copies, want about 5%% of 3000", copies)
	}
	isStop := false
	for _, w := range Stopwords {
		isStop = isStop || w == top
	}
	if !isStop {
		t.Errorf("the most frequent word is %q, want a stopword", top)
	}
}

func oneWordApart(a, b string) bool {
	x, y := strings.Fields(a), strings.Fields(b)
	if len(x) != len(y) {
		return false
	}
	diff := 0
	for i := range x {
		if x[i] != y[i] {
			diff++
		}
	}
	return diff <= 1
}
