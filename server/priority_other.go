//go:build !linux

package server

// atLowPriority runs f. Only Linux can lower the priority of one thread
// (see priority_linux.go).
func atLowPriority(f func()) { f() }
