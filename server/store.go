package server

import (
	"errors"
	"fmt"
	"io/fs"
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
	ErrRuleNotFound = errors.New("no such rule")
	// ErrVersionMismatch: expected_version is not the serving version.
	ErrVersionMismatch = errors.New("rule set changed since the expected version")
	// ErrNotPersistable: the change cannot be made durable, so it is not made.
	ErrNotPersistable = errors.New("rules cannot be persisted")
	// ErrNotReady: no rule set has been loaded yet.
	ErrNotReady = errors.New("no rule set loaded yet")
)

// Update changes the rule set durably. change receives the serving rules
// (shared: it must not modify them) and returns the new set. The new set
// is validated, written to the rules file (temp file in the same
// directory, fsync, rename, fsync of the directory) and only then
// published: when Update returns without error the change survives a crash
// and Decide already answers with it. expected, when non-zero, must be the
// serving version number.
func (s *RuleStore) Update(expected uint64, change func(current []decision.Rule) ([]decision.Rule, error)) (snap *Snapshot, err error) {
	// Rebuilding and writing a large set is background work next to the
	// decisions being served.
	atLowPriority(func() { snap, err = s.update(expected, change) })
	return snap, err
}

func (s *RuleStore) update(expected uint64, change func(current []decision.Rule) ([]decision.Rule, error)) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.Engine.Current()
	if cur == nil {
		return nil, ErrNotReady
	}
	if expected != 0 && expected != cur.Version.Number {
		return nil, fmt.Errorf("%w: expected version %d, serving version %d", ErrVersionMismatch, expected, cur.Version.Number)
	}
	if s.Path == "" {
		return nil, fmt.Errorf("%w: started without --rules: nowhere to persist (start redirectd with --rules FILE to manage rules through the admin API)", ErrNotPersistable)
	}
	target, err := writableTarget(s.Path)
	if err != nil {
		return nil, err
	}
	rules, err := change(cur.Rules)
	if err != nil {
		return nil, err
	}
	defer rebuildGC()()
	// The file is written in canonical form, so its hash is the version's.
	canonical := decision.MarshalRules(rules)
	sum := contentSum(canonical)
	snap, err := s.prepare(rules, s.Path, sum)
	if err != nil {
		return nil, err
	}
	if err := writeDurably(target, canonical); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotPersistable, err)
	}
	// The file now holds canonical: the watcher's echo of this write
	// finds the content it has seen and does not apply it twice.
	s.seenSum, s.seenFile = sum, nil
	s.publish(snap)
	return snap, nil
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

// writeDurably replaces path with data so that after a crash the file
// holds either the old or the new content, never a mix: write a temp file
// in the same directory, fsync it, rename it over path, fsync the
// directory so the rename itself is on disk.
func writeDurably(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	mode := fs.FileMode(0o644)
	if info, err := os.Stat(path); err == nil {
		mode = info.Mode().Perm()
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
