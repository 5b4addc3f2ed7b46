package decision

import (
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
	return readRules(path, f, info.Size())
}

// readRules reads a rules file of size bytes (0 when unknown) from r,
// refusing more than MaxRulesFileBytes.
func readRules(path string, r io.Reader, size int64) ([]byte, error) {
	if size > MaxRulesFileBytes {
		return nil, &RulesError{Problems: []Problem{tooBig(path, size, MaxRulesFileBytes)}}
	}
	// Read into a slice of the file's size and one byte more, so a file
	// that grew since the Stat (or a reader longer than said) shows as a
	// full slice. make gets fresh zeroed pages; growing a bytes.Buffer
	// would also clear them in one loop that cannot be preempted, which
	// at 100 MB holds up the collector and every goroutine it stops.
	data := make([]byte, size+1)
	n, err := io.ReadFull(r, data)
	switch {
	case err == nil: // the file grew: read on, up to the limit
		rest, err := io.ReadAll(io.LimitReader(r, MaxRulesFileBytes-size))
		if err != nil {
			return nil, err
		}
		data = append(data, rest...)
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		data = data[:n]
	default:
		return nil, err
	}
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
