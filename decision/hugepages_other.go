//go:build !linux

package decision

// hugePages is a no-op where the kernel has no transparent huge pages
// (see hugepages_linux.go).
func hugePages[E any](s []E) {}
