package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// A derived table rewritten with the same records writes nothing; records
// that change are written; keys this run does not produce are deleted; other
// tables are left alone.
func TestTableWritesOnlyChanges(t *testing.T) {
	st, err := OpenStore(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Put("r/other", []byte("x")); err != nil {
		t.Fatal(err)
	}
	rewrite := func(keys []string, val func(string) string) (w, u, d int64) {
		t.Helper()
		tb := st.Table("q/")
		defer tb.Cancel()
		for _, k := range keys {
			if err := tb.Put(k, []byte(val(k))); err != nil {
				t.Fatal(err)
			}
		}
		if err := tb.Finish(context.Background()); err != nil {
			t.Fatal(err)
		}
		return tb.Changes()
	}
	var keys []string
	for i := 0; i < 2000; i++ {
		keys = append(keys, fmt.Sprintf("doc%04d:questions:0", i))
	}
	same := func(k string) string { return "v-" + k + strings.Repeat(".", 2000) } // over Badger's value-log threshold
	if w, u, d := rewrite(keys, same); w != 2000 || u != 0 || d != 0 {
		t.Fatalf("first write: %d written, %d unchanged, %d deleted", w, u, d)
	}
	if w, u, d := rewrite(keys, same); w != 0 || u != 2000 || d != 0 {
		t.Errorf("same records: %d written, %d unchanged, %d deleted; want 0, 2000, 0", w, u, d)
	}
	changed := func(k string) string {
		if strings.HasPrefix(k, "doc000") {
			return "new"
		}
		return same(k)
	}
	if w, u, d := rewrite(keys[:1500], changed); w != 10 || u != 1490 || d != 500 {
		t.Errorf("10 changed, 500 gone: %d written, %d unchanged, %d deleted", w, u, d)
	}
	n, _ := st.Count("q/")
	if v, _, _ := st.Get("q/doc0003:questions:0"); n != 1500 || string(v) != "new" {
		t.Errorf("table holds %d records, doc0003 = %.10q", n, v)
	}
	if _, ok, _ := st.Get("q/doc1999:questions:0"); ok {
		t.Error("a key this run did not produce is still there")
	}
	if _, ok, _ := st.Get("r/other"); !ok {
		t.Error("another table's key was deleted")
	}
	size, err := st.Size() // 1500 records, r/other and the store's format key
	if err != nil || size.Keys != 1502 || size.LiveBytes < 1500*2000 || size.DiskBytes == 0 {
		t.Errorf("size %+v, %v", size, err)
	}
}
