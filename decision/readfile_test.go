package decision

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadRulesFile reads files below and above the size that splits the
// read, on one worker and on two, with content that tells any misplaced
// byte; a file over the limit is refused by its size.
func TestReadRulesFile(t *testing.T) {
	for _, size := range []int{0, 10, 4<<20 - 1, 4 << 20, 9<<20 + 3} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*7 + i>>12)
		}
		path := filepath.Join(t.TempDir(), "rules.yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadRulesFile(path)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%d bytes: read %d bytes, equal %v, error %v", size, len(got), bytes.Equal(got, data), err)
		}
	}
	if _, err := ReadRulesFile(filepath.Join(t.TempDir(), "missing.yaml")); !os.IsNotExist(err) {
		t.Errorf("missing file: error %v, want not-exist", err)
	}

	big := filepath.Join(t.TempDir(), "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: the size is over the limit, the disk use is not.
	if err := f.Truncate(MaxRulesFileBytes + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = ReadRulesFile(big)
	var re *RulesError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "big.yaml: the file is 268435457 bytes; accepted: at most 268435456 (256 MiB)") {
		t.Errorf("over the limit: error %v, want a RulesError naming the file and both sizes", err)
	}
}
