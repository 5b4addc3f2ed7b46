package decision

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// ReadRulesFile reads a rules file for ParseRules or LoadRules. A file over
// MaxRulesFileBytes is refused from its size, before a byte of it is read;
// one that grows past it while being read is refused too.
func ReadRulesFile(path string) ([]byte, error) {
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
	// Sized from the start: growing the buffer as io.ReadAll does would
	// copy and touch twice the file's size in memory.
	var b bytes.Buffer
	b.Grow(int(size) + bytes.MinRead)
	if _, err := b.ReadFrom(io.LimitReader(f, MaxRulesFileBytes+1)); err != nil {
		return nil, err
	}
	data := b.Bytes()
	if len(data) > MaxRulesFileBytes {
		return nil, &RulesError{Problems: []Problem{tooBig(path, int64(len(data)), MaxRulesFileBytes)}}
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
