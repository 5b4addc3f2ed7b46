package decision

import (
	"fmt"
	"io"
	"os"
)

// ReadRulesFile reads a rules file for ParseRules or LoadRules. A file over
// MaxRulesFileBytes is refused from its size, before a byte of it is read.
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
	if size := info.Size(); size > MaxRulesFileBytes {
		return nil, &RulesError{Problems: []Problem{tooBig(path, size, MaxRulesFileBytes)}}
	}
	return readWhole(f)
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
