package retriever

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestBM25FileRoundTrip(t *testing.T) {
	ids, texts, queries := zipfCorpus(3000)
	params := &BM25Params{K1: 1.2, B: 0.75}
	b := NewBM25Builder(nil, params)
	b.AddBatch(ids, texts, 0)
	built := b.Build()
	fp := map[string]string{"corpus": "sha-1", "analyzer": "english"}
	path := filepath.Join(t.TempDir(), "bm25.idx")
	if err := built.WriteFile(path, fp); err != nil {
		t.Fatal(err)
	}
	loaded, err := OpenBM25(path, nil, params, fp)
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	if loaded.Len() != built.Len() || loaded.Terms() != built.Terms() || loaded.Postings() != built.Postings() {
		t.Fatalf("loaded %d passages %d terms %d postings, built %d %d %d",
			loaded.Len(), loaded.Terms(), loaded.Postings(), built.Len(), built.Terms(), built.Postings())
	}
	if !bytes.Equal(loaded.norms, built.norms) || !reflect.DeepEqual(loaded.denseIDs, built.denseIDs) ||
		!reflect.DeepEqual(loaded.dense, built.dense) || loaded.tf1Inv != built.tf1Inv ||
		!reflect.DeepEqual(loaded.wboundIDs, built.wboundIDs) || !reflect.DeepEqual(loaded.wbounds, built.wbounds) {
		t.Fatal("loaded index's norms, frequent-term bitmaps or window bounds differ from the built one's")
	}
	// Every term is found by its text in both (the hash table is built on
	// open, not stored), and only those.
	for _, ix := range []*BM25{built, loaded} {
		for term := range ix.Terms() {
			if got, ok := ix.term(ix.termAt(term)); !ok || got != uint32(term) {
				t.Fatalf("term %d %q: found %d %v", term, ix.termAt(term), got, ok)
			}
		}
		for _, absent := range []string{"", "zzzzzzzzzzzz", ix.termAt(0) + "x", "\x00"} {
			if got, ok := ix.term(absent); ok {
				t.Fatalf("absent term %q found as %d", absent, got)
			}
		}
	}
	ctx := context.Background()
	for _, q := range append(queries[:200], texts[5], "") {
		for _, k := range []int{10, 100} {
			want, _ := built.Search(ctx, q, k)
			got, err := loaded.Search(ctx, q, k)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("query %q k=%d: loaded index gives %v, built %v", q, k, got, want)
			}
		}
	}
	// The same index writes the same bytes.
	again := filepath.Join(t.TempDir(), "bm25.idx")
	if err := loaded.WriteFile(again, fp); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(path)
	c, _ := os.ReadFile(again)
	if !bytes.Equal(a, c) {
		t.Error("writing a loaded index gives other bytes than the built one")
	}
}

func TestBM25FileRefused(t *testing.T) {
	b := NewBM25Builder(nil, nil)
	for i, text := range []string{"alpha beta gamma", "beta delta", "gamma epsilon zeta"} {
		b.Add(string(rune('a'+i)), text)
	}
	ix := b.Build()
	fp := map[string]string{"corpus": "sha-1", "analyzer": "english"}
	dir := t.TempDir()
	path := filepath.Join(dir, "bm25.idx")
	if err := ix.WriteFile(path, fp); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	write := func(b []byte) string {
		p := filepath.Join(t.TempDir(), "bm25.idx")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A file of format version 1 (no norms) is refused, not misread.
	stale := bytes.Clone(good)
	binary.LittleEndian.PutUint32(stale[8:], 1)
	flipped := bytes.Clone(good)
	flipped[len(flipped)-70] ^= 0x10
	cases := []struct {
		name   string
		path   string
		params *BM25Params
		fp     map[string]string
		want   []string
	}{
		{"another corpus", path, nil, map[string]string{"corpus": "sha-2", "analyzer": "english"},
			[]string{`corpus: the file has "sha-1", this run "sha-2"`}},
		{"other params", path, &BM25Params{K1: 1.2, B: 0.4}, fp, []string{"k1: the file has 0.9, this run 1.2"}},
		{"a key missing", path, nil, map[string]string{"corpus": "sha-1"}, []string{`analyzer: the file has "english", this run "(none)"`}},
		{"a flipped bit", write(flipped), nil, fp, []string{"corrupt: checksum"}},
		{"format version 1", write(stale), nil, fp, []string{"format version 1, this synthq reads 2"}},
		{"truncated", write(good[:len(good)-64]), nil, fp, []string{"truncated"}},
		{"not an index", write([]byte(strings.Repeat("x", 5000))), nil, fp, []string{"not a synthq BM25 index file"}},
		{"missing", filepath.Join(dir, "nope.idx"), nil, fp, []string{"no such file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ix, err := OpenBM25(tc.path, nil, tc.params, tc.fp)
			if err == nil {
				ix.Close()
				t.Fatal("opened")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
