package pipeline

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
)

// TestStoreFormat: a store records its format version when first opened; a
// store of a newer format is refused by name, and one of this format (or
// written before the key existed) opens.
func TestStoreFormat(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	st, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, ok, err := st.Get(KeyFormat)
	if err != nil || !ok || string(b) != strconv.Itoa(StoreFormat) {
		t.Fatalf("format key: %q %v %v, want %d", b, ok, err, StoreFormat)
	}
	// A store written before the key existed opens and gets it.
	st.Delete(KeyFormat)
	st.Close()
	if st, err = OpenStore(dir); err != nil {
		t.Fatalf("store without a format key: %v", err)
	}
	if _, ok, _ := st.Get(KeyFormat); !ok {
		t.Error("the format key was not recorded on open")
	}
	for _, v := range []string{strconv.Itoa(StoreFormat + 1), "x", "0"} {
		st.Put(KeyFormat, []byte(v))
		st.Close()
		_, err = OpenStore(dir)
		want := "is not a number this synthq knows"
		if v == strconv.Itoa(StoreFormat+1) {
			want = "store format " + v + " was written by a newer synthq"
		}
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("format %q: err %v, want %q naming the store", v, err, want)
		}
		// The refused store is closed again: it can be fixed and opened.
		st = openRaw(t, dir)
	}
	st.Put(KeyFormat, []byte(strconv.Itoa(StoreFormat)))
	st.Close()
	if st, err = OpenStore(dir); err != nil {
		t.Fatal(err)
	}
	st.Close()
}

// openRaw opens a store without the format check.
func openRaw(t *testing.T, dir string) *Store {
	t.Helper()
	st, err := OpenStore(dir)
	if err == nil {
		return st
	}
	// Reset the key by hand through Badger itself.
	db, err2 := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithValueLogFileSize(valueLogFileSize))
	if err2 != nil {
		t.Fatalf("%v; %v", err, err2)
	}
	return &Store{db: db, path: dir}
}
