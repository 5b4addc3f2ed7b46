package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/redirectd/redirectd/decision"
)

// Errors of a rule-set change; admin.go maps them to gRPC codes in one
// place. Each is wrapped with the specifics (which rule, which path).
var (
	// ErrRuleNotFound: no rule has the id.
	ErrRuleNotFound = decision.ErrRuleNotFound
	// ErrVersionMismatch: the set is not the one the precondition
	// (expected_version, expected_hash) names.
	ErrVersionMismatch = errors.New("rule set changed since the expected version")
	// ErrNotPersistable: the change cannot be made durable, so it is not made.
	ErrNotPersistable = errors.New("rules cannot be persisted")
	// ErrNotReady: no rule set has been loaded yet.
	ErrNotReady = errors.New("no rule set loaded yet")
)

// Rules is s itself: the file store publishes its own sets.
func (s *RuleStore) Rules() *RuleStore { return s }

// Update changes the rule set durably. The edit is made on the
// decision.Store (Edit.prepare), which checks it and changes in place
// only what differs. The set as it will be is then written to the rules
// file (temp file in the same directory, fsync, rename, fsync of the
// directory) and only then published: when Update returns without error
// the change survives a crash and Decide already answers with it. The file
// keeps its format (FormatOf its name). pre is checked against the
// serving set under the same lock as the write, so nothing lands between.
func (s *RuleStore) Update(_ context.Context, pre Precondition, e Edit) (*Snapshot, []decision.Problem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.Engine.Current()
	if cur == nil {
		return nil, nil, ErrNotReady
	}
	if err := pre.check(cur.Version, "serving"); err != nil {
		return nil, nil, err
	}
	target, err := s.writable()
	if err != nil {
		return nil, nil, err
	}
	if !e.Whole {
		if err := s.fileServes(cur); err != nil {
			return nil, nil, err
		}
	}
	start := s.Now()
	c, err := e.prepare(s.Engine.Store(), start)
	if err != nil {
		return nil, nil, err
	}
	defer c.Abort()
	sum, err := writeDurably(target, func(w io.Writer) error { return writeRulesFile(w, s.Path, c.Index()) })
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrNotPersistable, err)
	}
	// The file now holds this set: the watcher's echo of this write finds
	// the content it has seen and does not apply it twice.
	s.seenSum, s.seenFile, s.wroteFile = sum, nil, nil
	if info, err := os.Stat(s.Path); err == nil {
		s.wroteFile = info
	}
	return snapshotOf(s.apply(c, sum, s.Path, start)), c.Warnings(), nil
}

// fileServes checks that the rules file still holds the serving set cur,
// so that a put or delete, which writes the whole file, does not overwrite
// an edit made to it by hand that is not serving: one the watcher has not
// reloaded yet (ABORTED: read again and retry) or one it refused
// (FAILED_PRECONDITION until the file is fixed). ApplyRules replaces the
// whole set and file, as asked. A missing file holds nothing to lose.
//
// A file that stat shows unchanged since it was read (seenFile) or since
// this store wrote it (wroteFile) is not hashed again: at a million rules
// that is 100 MB read and hashed per write. After its own write this
// trusts stat even within stableAge: a hand edit that kept the file, its
// size and its mtime, written in place within the clock tick of the
// write, would go unseen; any other edit is found.
func (s *RuleStore) fileServes(cur *Snapshot) error {
	if info, err := os.Stat(s.Path); err == nil && (unchangedFile(s.seenFile, info) || unchangedFile(s.wroteFile, info)) &&
		hex.EncodeToString(s.seenSum[:]) == cur.Version.Hash {
		return nil
	}
	sum, err := fileSum(s.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%w: read %s to check that it holds the serving set: %v", ErrNotPersistable, s.Path, err)
	case hex.EncodeToString(sum[:]) == cur.Version.Hash:
		return nil
	case sum == s.seenSum:
		return fmt.Errorf("%w: the rules file %s holds an edit that was refused and is not serving (the log and the console's status page say why); "+
			"a put or delete would overwrite it: fix the file, or replace the whole set with ApplyRules", ErrNotPersistable, s.Path)
	}
	return fmt.Errorf("%w: the rules file %s changed on disk and the change is not loaded yet; a write now would overwrite it", ErrVersionMismatch, s.Path)
}

// Writable is nil when admin writes can be persisted to the rules file.
func (s *RuleStore) Writable() error {
	_, err := s.writable()
	return err
}

// writable is the file a write replaces, or why there is none.
func (s *RuleStore) writable() (string, error) {
	if s.Path == "" {
		return "", fmt.Errorf("%w: started without --rules: nowhere to persist (start redirectd with --rules FILE to manage rules through the admin API)", ErrNotPersistable)
	}
	return writableTarget(s.Path)
}

// writeRulesFile writes the rules of ix to w in the format of the rules
// file at path (decision.FormatOf its name), streaming from the store.
func writeRulesFile(w io.Writer, path string, ix *decision.Index) error {
	return decision.WriteRules(w, decision.FormatOf(path), ix.All())
}

// tempPattern is the name of the temp files writeDurably makes beside a
// rules file; removeStaleTemps knows them by it.
func tempPattern(path string) string { return "." + filepath.Base(path) + ".tmp-*" }

// removeStaleTemps removes the temp files an interrupted write (a crash,
// SIGKILL) left beside the rules file: nothing else makes files of that
// name, and on a small volume they would fill it.
func removeStaleTemps(path string, log *slog.Logger) {
	if path == "" {
		return
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		target = path
	}
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(target), tempPattern(target)))
	for _, f := range stale {
		if err := os.Remove(f); err != nil {
			log.Warn("stale temp file of an interrupted rules write not removed", "file", f, "error", err)
			continue
		}
		log.Info("removed the temp file of an interrupted rules write", "file", f)
	}
}

// writableTarget resolves the rules path to the file a write must replace
// (through symlinks, so a symlinked file stays a symlink) and checks that
// it and its directory can be written, with a message an operator can act
// on when not.
func writableTarget(path string) (string, error) {
	target, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		target = path // removed since loaded: the write recreates it
	} else if err != nil {
		return "", fmt.Errorf("%w: resolve rules file %s: %v", ErrNotPersistable, path, err)
	}
	if info, err := os.Stat(target); err == nil {
		// Root may write a file without write permission; an operator who
		// took every write bit away still means "do not write".
		if info.Mode().Perm()&0o222 == 0 {
			return "", notWritable(target, fmt.Sprintf("the file is read-only (mode %04o)", info.Mode().Perm()))
		}
		if err := unix.Access(target, unix.W_OK); err != nil {
			return "", notWritable(target, accessReason(err))
		}
	}
	dir := filepath.Dir(target)
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return "", notWritable(dir, "its directory, where the new file is written before it replaces the old one: "+accessReason(err))
	}
	return target, nil
}

func notWritable(path, why string) error {
	return fmt.Errorf("%w: %s is not writable: %s", ErrNotPersistable, path, why)
}

func accessReason(err error) string {
	if errors.Is(err, syscall.EROFS) {
		return "read-only file system (a Kubernetes ConfigMap volume is read-only: change the ConfigMap instead, or mount the rules on a writable volume to use admin writes)"
	}
	return err.Error()
}

// writeDurably replaces path with what write writes, so that after a
// crash the file holds either the old or the new content, never a mix:
// write a temp file in the same directory, fsync it, rename it over path,
// fsync the directory so the rename itself is on disk. It returns the
// SHA-256 of what was written.
func writeDurably(path string, write func(io.Writer) error) (sum [sha256.Size]byte, err error) {
	dir := filepath.Dir(path)
	mode := fs.FileMode(0o644)
	if info, err := os.Stat(path); err == nil {
		mode = info.Mode().Perm()
	}
	f, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return sum, fmt.Errorf("create temp file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	buf := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	if err = write(buf); err == nil {
		err = buf.Flush()
	}
	if err != nil {
		return sum, fmt.Errorf("write %s: %w", tmp, err)
	}
	h.Sum(sum[:0])
	if err = f.Chmod(mode); err != nil {
		return sum, fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return sum, fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return sum, fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return sum, fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return sum, fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return sum, fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return sum, nil
}
