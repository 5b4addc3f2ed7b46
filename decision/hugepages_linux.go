package decision

import (
	"syscall"
	"unsafe"
)

// hugePages asks the kernel to back s with 2 MiB pages where it can. It is
// for the few arrays of a large load that are made once and filled at
// once (the rules, the compiled routes, the slots): touching memory for
// the first time is a page fault per 4 KiB page, and on a virtual machine
// each one is dear (about 13 µs here). With transparent huge pages in
// "madvise" mode, the common default, nothing is huge unless asked. The
// advice is only advice: any error is ignored, and small slices are left
// alone.
func hugePages[E any](s []E) {
	const huge = 2 << 20
	if len(s) == 0 {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	end := start + uintptr(len(s))*unsafe.Sizeof(s[0])
	from, to := (start+huge-1)&^(huge-1), end&^(huge-1)
	if to > from {
		_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, from, to-from, 14 /* MADV_HUGEPAGE */)
	}
}
