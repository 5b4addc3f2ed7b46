package decision

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// ReadRulesFile reads a rules file for ParseRules or LoadRules. A file over
// MaxRulesFileBytes is refused from its size, before a byte of it is read.
//
// A large file goes into memory the process has not touched yet, which on
// a virtual machine costs a page fault per 4 KiB (half a second for a
// 150 MB file here). So its buffer is asked for huge pages, and given
// opts.LoadWorkers of two or more it is read in two halves at once. A file
// that shrinks or grows during the read is read again whole.
func ReadRulesFile(path string, opts Options) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := info.Size()
	if size > MaxRulesFileBytes {
		return nil, &RulesError{Problems: []Problem{tooBig(path, size, MaxRulesFileBytes)}}
	}
	if size < 4<<20 || !info.Mode().IsRegular() {
		return readWhole(f)
	}
	data := make([]byte, size)
	hugePages(data)
	parts := [][2]int64{{0, size}}
	if opts.loadWorkers() >= 2 {
		parts = [][2]int64{{0, size / 2}, {size / 2, size}}
	}
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		// ReadAt fills its part or says why not (io.EOF: the file shrank).
		wg.Go(func() { _, errs[i] = f.ReadAt(data[p[0]:p[1]], p[0]) })
	}
	wg.Wait()
	var probe [1]byte
	if n, _ := f.ReadAt(probe[:], size); n > 0 || errors.Is(errors.Join(errs...), io.EOF) {
		return readWhole(f) // the size changed under the read
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return data, nil
}

// readWhole reads f to its end, whatever its size said, within the size
// limit. Nothing has moved f's offset: ReadAt leaves it at the start.
func readWhole(f *os.File) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, MaxRulesFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxRulesFileBytes {
		return nil, &RulesError{Problems: []Problem{tooBig(f.Name(), int64(len(data)), MaxRulesFileBytes)}}
	}
	return data, nil
}

// tooBig is the problem of a file over the size limit.
func tooBig(file string, size int64, limit int) Problem {
	return Problem{
		File:    file,
		Message: fmt.Sprintf("the file is %d bytes; accepted: at most %d (%d MiB)", size, limit, limit>>20),
	}
}
