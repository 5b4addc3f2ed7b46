package server

import (
	"runtime"
	"syscall"
)

// atLowPriority runs f on an OS thread of its own at the lowest CPU
// priority (nice 19) and waits for it. A reload of a million rules is
// seconds of CPU; at normal priority the kernel shares the cores evenly
// between it and the threads answering requests (and, on a small box, the
// proxy or load generator beside the daemon), and decisions queue behind
// it. At nice 19 it runs when they leave a core idle. The thread is not
// reused: a goroutine that ends locked to its thread takes the thread with
// it, niceness and all.
func atLowPriority(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		// Best effort: without the permission (never needed to lower
		// one's own priority) the work runs at normal priority.
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19)
		f()
	}()
	<-done
}
