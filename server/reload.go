package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redirectd/redirectd/decision"
)

// RuleStore owns the rules file behind the Engine's decision.Store: it
// reads and applies the file (the store changes in place what differs),
// persists admin writes (store.go) and reloads when the file changes
// (watch.go). File reloads and admin writes are serialised on one mutex,
// so they never interleave.
//
// Set the fields, then call Load (or LoadBytes for embedded rules) before
// serving; the fields must not change afterwards.
type RuleStore struct {
	Engine *Engine
	// Path is the rules file; "" when serving built-in rules, which admin
	// writes cannot persist.
	Path    string
	Log     *slog.Logger
	Metrics *Metrics       // optional
	Hits    *Hits          // optional
	History *ReloadHistory // optional: the last outcomes, for the console
	Now     func() time.Time
	// MaxDrop refuses a reload that would remove more than this fraction
	// of the serving rules (--reload-max-drop): a file caught half-written
	// looks like one that lost most of its rules. 0 or 1 and above: no
	// limit. Admin ApplyRules is explicit, and exempt.
	MaxDrop float64

	mu sync.Mutex
	// seenSum is the SHA-256 of the rules file content last read or
	// written, good or bad: the watcher skips an event that left the
	// content as it was, including the echo of our own admin write, and a
	// refused file is not tried again until it changes.
	seenSum [sha256.Size]byte
	// seenFile is what stat said of the rules file just before it was
	// last read, kept only when the file had not been modified for
	// stableAge: then an event that finds the same file, size and mtime
	// is skipped without reading and hashing it. A file modified more
	// recently may be written again within the file system's timestamp
	// granularity without its mtime moving, so its content is always
	// compared (git's "racy" rule).
	seenFile os.FileInfo
	// wroteFile is what stat said of the rules file just after an admin
	// write replaced it (fileServes); nil once anything else read it.
	wroteFile os.FileInfo
	folding   atomic.Bool
}

// stableAge is how long a rules file must have been left alone for its
// stat to stand for its content.
const stableAge = 2 * time.Second

// Load reads and applies the rules file. At startup an error means there
// is nothing to serve: the caller should exit with it. Temp files an
// interrupted admin write left beside the file are removed first.
func (s *RuleStore) Load() error {
	removeStaleTemps(s.Path, s.Log)
	_, err := s.Reload()
	return err
}

// LoadBytes applies rules read from data (the built-in example); source
// names them in logs and problems.
func (s *RuleStore) LoadBytes(source string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := s.Now()
	c, err := s.Engine.Store().ReplaceFile(source, data)
	if err != nil {
		s.reject(source, err)
		return err
	}
	s.apply(c, contentSum(data), source, start)
	return nil
}

// Reload re-reads the rules file through its path (following symlinks, as
// a Kubernetes ConfigMap mount needs) and applies it unless its content is
// unchanged. On any error the serving rule set stays as it was.
func (s *RuleStore) Reload() (applied bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	serving := s.Engine.Ready()
	info, err := os.Stat(s.Path)
	if err == nil && serving && unchangedFile(s.seenFile, info) {
		return false, nil
	}
	s.seenFile = nil
	if err == nil && time.Since(info.ModTime()) >= stableAge { // file times are wall-clock times
		s.seenFile = info
	}
	start := s.Now()
	if serving {
		// Most events leave the content as it was (the echo of an admin
		// write, a touch): hashing the file as it streams past finds
		// those without holding 100 MB of it in memory.
		if sum, err := fileSum(s.Path); err == nil && sum == s.seenSum {
			return false, nil
		}
	}
	return s.applyFile(start)
}

// applyData applies the content of a rules file read from source (the
// file's path or its URL) unless it is the content last seen, with the
// checks every reload makes: not empty, not a drop of most rules. The
// caller holds s.mu.
func (s *RuleStore) applyData(source string, data []byte, start time.Time) (applied bool, err error) {
	sum := contentSum(data)
	if s.Engine.Ready() && sum == s.seenSum {
		return false, nil
	}
	s.seenSum, s.wroteFile = sum, nil
	if len(bytes.TrimSpace(data)) == 0 {
		err := emptyFile(source)
		s.reject(source, err)
		return false, err
	}
	c, err := s.Engine.Store().ReplaceFile(source, data)
	if err != nil {
		s.reject(source, err)
		return false, err
	}
	return s.applyChange(c, sum, source, start)
}

// applyChange applies a prepared reload unless it would drop more of the
// serving set than MaxDrop allows. The caller holds s.mu.
func (s *RuleStore) applyChange(c *decision.Change, sum [sha256.Size]byte, source string, start time.Time) (applied bool, err error) {
	if cur := s.Engine.Current(); cur != nil && s.MaxDrop > 0 && s.MaxDrop < 1 &&
		float64(c.Deletes) > s.MaxDrop*float64(cur.Index.Len()) {
		c.Abort()
		if s.Metrics != nil {
			s.Metrics.observeDropRefused()
		}
		err := fmt.Errorf("rules file %s would remove %d of the %d serving rules, more than --reload-max-drop %g%%; "+
			"keeping the serving set until the file changes again (a file written in place and caught half-written "+
			"looks like this: replace rules files by rename)", source, c.Deletes, cur.Index.Len(), s.MaxDrop*100)
		s.reject(source, err)
		return false, err
	}
	s.apply(c, sum, source, start)
	return true, nil
}

// applyFile applies the rules file as it is read: the store changes in
// place what differs (decision.Store.ReplaceFrom, which streams a JSON
// Lines file into a new base and reads other formats whole), and the hash
// is taken on the way, so this side never holds the file. The checks are
// those of applyData. The caller holds s.mu.
func (s *RuleStore) applyFile(start time.Time) (bool, error) {
	f, err := os.Open(s.Path)
	if err == nil {
		defer f.Close()
	}
	var info os.FileInfo
	if err == nil {
		info, err = f.Stat()
	}
	if err != nil {
		err = fmt.Errorf("read rules %s: %w", s.Path, err)
		s.reject(s.Path, err)
		return false, err
	}
	h := sha256.New()
	var content nonBlank
	c, err := s.Engine.Store().ReplaceFrom(s.Path, io.TeeReader(f, io.MultiWriter(h, &content)), info.Size())
	if re := (*decision.RulesError)(nil); err != nil && !errors.As(err, &re) {
		err = fmt.Errorf("read rules %s: %w", s.Path, err)
	}
	if err == nil && !bool(content) {
		c.Abort()
		err = emptyFile(s.Path)
	}
	if err != nil {
		// A refused file may not have been read to its end: the hash is
		// the whole file's, so the next event finds it unchanged.
		io.Copy(h, f)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if err == nil && s.Engine.Ready() && sum == s.seenSum {
		c.Abort() // changed back while it was read
		return false, nil
	}
	s.seenSum, s.wroteFile = sum, nil
	if err != nil {
		s.reject(s.Path, err)
		return false, err
	}
	return s.applyChange(c, sum, s.Path, start)
}

// nonBlank records whether anything but white space was written to it.
type nonBlank bool

func (n *nonBlank) Write(p []byte) (int, error) {
	if !*n && len(bytes.TrimSpace(p)) > 0 {
		*n = true
	}
	return len(p), nil
}

// emptyFile is the error for a rules file with nothing in it: most
// likely a truncate-and-write caught in the middle, and serving it would
// drop every redirect at once.
func emptyFile(source string) error {
	return fmt.Errorf("rules file %s is empty (a write in progress?); an empty rule set is written \"rules: []\"", source)
}

// unchangedFile reports whether now is the same file as seen, not
// modified since; false when seen is nil.
func unchangedFile(seen, now os.FileInfo) bool {
	return seen != nil && os.SameFile(seen, now) && seen.Size() == now.Size() && seen.ModTime().Equal(now.ModTime())
}

// fileSum is the SHA-256 of the file at path, read a buffer at a time.
func fileSum(path string) (sum [sha256.Size]byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

// contentSum is the SHA-256 of a rules file.
func contentSum(data []byte) [sha256.Size]byte { return sha256.Sum256(data) }

// apply commits a prepared change as the next version and publishes it.
// The caller holds s.mu.
func (s *RuleStore) apply(c *decision.Change, sum [sha256.Size]byte, source string, start time.Time) *decision.Index {
	var number uint64 = 1
	if cur := s.Engine.Current(); cur != nil {
		number = cur.Version.Number + 1
	}
	return s.publish(c, decision.Info{Version: number, Hash: hex.EncodeToString(sum[:]), Source: source, LoadedAt: start})
}

// publish commits a prepared change labelled with info and tells the hit
// counters, the metrics and the log: every source (the file, etcd)
// publishes through here. info.LoadedAt is when the change was started.
func (s *RuleStore) publish(c *decision.Change, info decision.Info) *decision.Index {
	start := info.LoadedAt
	ix := c.Commit(info)
	if s.Hits != nil {
		s.Hits.track(ix)
	}
	snap := snapshotOf(ix)
	if s.Metrics != nil {
		s.Metrics.observeApplied(snap)
	}
	s.History.record(ReloadOutcome{At: start, Source: info.Source, Applied: true, Version: info.Version, Rules: ix.Len()})
	s.Log.Info("rules applied",
		"version", snap.Version.Number, "hash", shortHash(snap.Version.Hash),
		"source", snap.Source, "rules", ix.Len(),
		"exact", ix.Count(decision.MatchExact),
		"prefix", ix.Count(decision.MatchPrefix),
		"pattern", ix.Count(decision.MatchPattern),
		"regex", ix.Count(decision.MatchRegex),
		"put", c.Puts, "deleted", c.Deletes, "rebuilt", c.Rebuilt,
		"warnings", len(c.Warnings()),
		"took", s.Now().Sub(start))
	// Warnings do not reject the set; a generated or imported set may
	// carry thousands, so the log shows the first ones and a count
	// (redirectctl lint or ValidateRules list them all).
	const mostWarnings = 100
	for i, w := range c.Warnings() {
		if i == mostWarnings {
			s.Log.Warn("more rules warnings not logged", "count", len(c.Warnings())-mostWarnings)
			break
		}
		s.Log.Warn("rules warning", "problem", w.String())
	}
	s.foldWhenDue()
	return ix
}

// shortHash is the start of a version's hash for the log.
func shortHash(h string) string { return h[:min(len(h), 12)] }

// foldWhenDue folds the store's overlay into a new base on a goroutine of
// its own once it has grown (decision.Store.NeedsFold): O(n) work, off the
// request path and off the write that triggered it.
func (s *RuleStore) foldWhenDue() {
	st := s.Engine.Store()
	if !st.NeedsFold() || !s.folding.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.folding.Store(false)
		start := s.Now()
		st.Fold()
		s.Log.Info("rule store folded", "rules", st.Index().Len(), "took", s.Now().Sub(start))
	}()
}

// reject logs why a rule set was not applied, one line per problem, and
// counts it.
func (s *RuleStore) reject(source string, err error) {
	if s.Metrics != nil {
		s.Metrics.observeRejected()
	}
	keeping := "none"
	out := ReloadOutcome{At: s.Now(), Source: source, Error: err.Error()}
	if cur := s.Engine.Current(); cur != nil {
		keeping = fmt.Sprint(cur.Version.Number)
		out.Version, out.Rules = cur.Version.Number, cur.Index.Len()
	}
	s.History.record(out)
	var rerr *decision.RulesError
	if !errors.As(err, &rerr) {
		s.Log.Error("rules not applied", "source", source, "error", err, "serving_version", keeping)
		return
	}
	s.Log.Error("rules not applied", "source", source, "problems", len(rerr.Problems), "serving_version", keeping)
	for _, p := range rerr.Problems {
		s.Log.Error("rules problem", "problem", p.String())
	}
}
