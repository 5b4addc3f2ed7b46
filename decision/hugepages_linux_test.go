package decision

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// TestHugePages checks that the advice reaches the kernel: the mapping
// holding a large slice carries the "hg" (MADV_HUGEPAGE) flag afterwards.
func TestHugePages(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil {
		t.Skipf("this kernel has no transparent huge pages (%v); the advice is a no-op here", err)
	}
	s := make([]Rule, 100_000) // 17 MB: whole 2 MiB pages inside it
	hugePages(s)
	addr := uintptr(unsafe.Pointer(&s[len(s)/2]))
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps (%v): cannot see the advice", err)
	}
	defer f.Close()
	inside, found := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if from, to, ok := strings.Cut(strings.Fields(line)[0], "-"); ok && !strings.HasSuffix(line, ":") {
			lo, err1 := strconv.ParseUint(from, 16, 64)
			hi, err2 := strconv.ParseUint(to, 16, 64)
			if err1 == nil && err2 == nil {
				inside = uint64(addr) >= lo && uint64(addr) < hi
				continue
			}
		}
		if inside && strings.HasPrefix(line, "VmFlags:") {
			found = true
			if !strings.Contains(line, " hg") {
				t.Errorf("the slice's mapping has %q, want the hg flag", line)
			}
		}
	}
	if !found {
		t.Fatalf("no mapping in /proc/self/smaps holds address %#x", addr)
	}
	runtime.KeepAlive(s)
}
