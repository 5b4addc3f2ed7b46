package server

import (
	"runtime"
	"syscall"
	"testing"
)

// threadNice is the calling thread's nice value. The raw getpriority
// system call answers 20 - nice, so that it never looks like an error.
func threadNice(t *testing.T) int {
	t.Helper()
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	return 20 - p
}

func TestAtLowPriority(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := threadNice(t)
	inside := 0
	atLowPriority(func() { inside = threadNice(t) })
	if inside != 19 {
		t.Errorf("nice inside atLowPriority = %d, want 19", inside)
	}
	if after := threadNice(t); after != before {
		t.Errorf("the caller's thread went from nice %d to %d", before, after)
	}
}
