package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/redirectd/redirectd/decision"
)

// RuleStore owns the serving rule set: it is the one place where a rule set
// is parsed, built aside, versioned, published to the Engine, persisted
// (store.go) and reloaded when its file changes (watch.go). File reloads
// and admin writes are serialised on one mutex, so they never interleave.
//
// Set the fields, then call Load (or LoadBytes for embedded rules) before
// serving; the fields must not change afterwards.
type RuleStore struct {
	Engine *Engine
	// Path is the rules file; "" when serving built-in rules, which admin
	// writes cannot persist.
	Path    string
	Options decision.Options
	Log     *slog.Logger
	Metrics *Metrics // optional
	Hits    *Hits    // optional
	Now     func() time.Time

	mu sync.Mutex
	// seenSum is the SHA-256 of the rules file content last read or
	// written, good or bad: the watcher skips an event that left the
	// content as it was, including the echo of our own admin write.
	seenSum [sha256.Size]byte
	// seenFile is what stat said of the rules file just before it was
	// last read, kept only when the file had not been modified for
	// stableAge: then an event that finds the same file, size and mtime
	// is skipped without reading and hashing it (a second of CPU at a
	// million rules, as the watcher's first look right after startup
	// would spend). A file modified more recently may be written again
	// within the file system's timestamp granularity without its mtime
	// moving, so its content is always compared (git's "racy" rule).
	seenFile os.FileInfo
}

// stableAge is how long a rules file must have been left alone for its
// stat to stand for its content.
const stableAge = 2 * time.Second

// Load reads, builds and publishes the rules file. At startup an error
// means there is nothing to serve: the caller should exit with it.
func (s *RuleStore) Load() error {
	_, err := s.Reload()
	return err
}

// LoadBytes builds and publishes rules read from data (the built-in
// example); source names them in logs and problems.
func (s *RuleStore) LoadBytes(source string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := s.prepareFile(source, data, hashAside(data, false))
	if err != nil {
		s.reject(source, err)
		return err
	}
	s.publish(snap)
	return nil
}

// Reload re-reads the rules file through its path (following symlinks, as
// a Kubernetes ConfigMap mount needs) and applies it unless its content is
// unchanged. On any error the serving rule set stays as it was.
func (s *RuleStore) Reload() (applied bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Before the first set nothing is served: the load may take every core.
	serving := s.Engine.Ready()
	info, err := os.Stat(s.Path)
	if err == nil && serving && unchangedFile(s.seenFile, info) {
		return false, nil
	}
	s.seenFile = nil
	if err == nil && time.Since(info.ModTime()) >= stableAge { // file times are wall-clock times
		s.seenFile = info
	}
	data, err := decision.ReadRulesFile(s.Path)
	var tooBig *decision.RulesError
	if err != nil && !errors.As(err, &tooBig) {
		err = fmt.Errorf("read rules %s: %w", s.Path, err)
	}
	if err != nil {
		s.reject(s.Path, err)
		return false, err
	}
	// While a set is serving, the hash decides first whether there is
	// anything to build. At start-up there is nothing to compare with, and
	// the hash (half a second at a million rules) runs beside the parse.
	sum := hashAside(data, !serving)
	if serving && sum() == s.seenSum {
		return false, nil
	}
	if len(bytes.TrimSpace(data)) == 0 {
		// Most likely a truncate-and-write caught in the middle: serving
		// it would drop every redirect at once.
		s.seenSum = sum()
		err := fmt.Errorf("rules file %s is empty (a write in progress?); an empty rule set is written \"rules: []\"", s.Path)
		s.reject(s.Path, err)
		return false, err
	}
	if serving {
		defer rebuildGC()()
	}
	snap, err := s.prepareFile(s.Path, data, sum)
	s.seenSum = sum()
	if err != nil {
		s.reject(s.Path, err)
		return false, err
	}
	s.publish(snap)
	return true, nil
}

// unchangedFile reports whether now is the same file as seen, not
// modified since; false when seen is nil.
func unchangedFile(seen, now os.FileInfo) bool {
	return seen != nil && os.SameFile(seen, now) && seen.Size() == now.Size() && seen.ModTime().Equal(now.ModTime())
}

// prepareFile parses and builds the Snapshot that would serve a rules
// file's content, without publishing it; sum gives the content's SHA-256.
// decision.LoadRules checks each rule once, where ParseRules then Build
// would check it twice.
func (s *RuleStore) prepareFile(source string, data []byte, sum func() [sha256.Size]byte) (*Snapshot, error) {
	start := s.Now()
	ix, rules, warnings, err := decision.LoadRules(source, data, s.buildOptions())
	if err != nil {
		return nil, err
	}
	return s.snapshot(ix, rules, warnings, source, sum(), start), nil
}

// prepare builds the Snapshot that would serve rules, without publishing
// it. sum, the SHA-256 of the rules file content, is the version hash: the
// file was read (or, for an admin write, is about to be written) anyway,
// so the version costs no second serialisation of a million rules. Errors
// are *decision.RulesError with every problem located in source.
func (s *RuleStore) prepare(rules []decision.Rule, source string, sum [sha256.Size]byte) (*Snapshot, error) {
	start := s.Now()
	ix, warnings, err := decision.Build(rules, s.buildOptions())
	if err != nil {
		return nil, locate(err, source)
	}
	return s.snapshot(ix, rules, locateProblems(warnings, source), source, sum, start), nil
}

// buildOptions are s.Options for the next build: on every core for the
// first (nothing is served yet: readiness waits on it), on one while a set
// is serving, so a reload of a million rules leaves the other cores to
// the decisions it must not delay.
func (s *RuleStore) buildOptions() decision.Options {
	opts := s.Options
	if s.Engine.Ready() {
		opts.LoadWorkers = 1
	}
	return opts
}

// snapshot is the next version serving ix, built at start from rules.
func (s *RuleStore) snapshot(ix *decision.Index, rules []decision.Rule, warnings []decision.Problem, source string, sum [sha256.Size]byte, start time.Time) *Snapshot {
	var number uint64 = 1
	if cur := s.Engine.Current(); cur != nil {
		number = cur.Version.Number + 1
	}
	return &Snapshot{
		Index:    ix,
		Rules:    rules,
		Warnings: warnings,
		Version:  Version{Number: number, Hash: hex.EncodeToString(sum[:])},
		Source:   source,
		LoadedAt: start,
	}
}

// hashAside returns a func giving contentSum(data): computed on another
// goroutine from now on when aside is true, else on the first call.
func hashAside(data []byte, aside bool) func() [sha256.Size]byte {
	if !aside {
		return sync.OnceValue(func() [sha256.Size]byte { return contentSum(data) })
	}
	done := make(chan [sha256.Size]byte, 1)
	go func() { done <- contentSum(data) }()
	return sync.OnceValue(func() [sha256.Size]byte { return <-done })
}

// contentSum is the SHA-256 of a rules file, fed in 1 MiB pieces. The hash
// runs in assembly, which the scheduler cannot preempt: one call over a
// 150 MB file (a million rules) held the GC's stop-the-world, and with it
// every decision, for up to a second and a half.
func contentSum(data []byte) [sha256.Size]byte {
	const piece = 1 << 20
	h := sha256.New()
	for len(data) > piece {
		h.Write(data[:piece])
		data = data[piece:]
		runtime.Gosched() // let decisions run during a reload; see decision.inChunks
	}
	h.Write(data)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// publish makes snap the serving rule set. The caller holds s.mu.
func (s *RuleStore) publish(snap *Snapshot) {
	if s.Hits != nil {
		// Counters first, so a decision made on the new set finds its rule.
		s.Hits.track(snap.Index)
	}
	s.Engine.Swap(snap)
	if s.Metrics != nil {
		s.Metrics.observeApplied(snap)
	}
	s.Log.Info("rules applied",
		"version", snap.Version.Number, "hash", snap.Version.Hash[:12],
		"source", snap.Source, "rules", len(snap.Rules),
		"exact", snap.Index.Count(decision.MatchExact),
		"prefix", snap.Index.Count(decision.MatchPrefix),
		"pattern", snap.Index.Count(decision.MatchPattern),
		"regex", snap.Index.Count(decision.MatchRegex),
		"warnings", len(snap.Warnings),
		"took", s.Now().Sub(snap.LoadedAt))
	// Warnings do not reject the set; a generated or imported set may
	// carry thousands, so the log shows the first ones and a count
	// (redirectctl lint or ValidateRules list them all).
	const mostWarnings = 100
	for i, w := range snap.Warnings {
		if i == mostWarnings {
			s.Log.Warn("more rules warnings not logged", "count", len(snap.Warnings)-mostWarnings)
			break
		}
		s.Log.Warn("rules warning", "problem", w.String())
	}
}

// reject logs why a rule set was not applied, one line per problem, and
// counts it.
func (s *RuleStore) reject(source string, err error) {
	if s.Metrics != nil {
		s.Metrics.observeRejected()
	}
	keeping := "none"
	if cur := s.Engine.Current(); cur != nil {
		keeping = fmt.Sprint(cur.Version.Number)
	}
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

// locate names source in problems that Build could not place in a file
// (it sees rules, not files).
func locate(err error, source string) error {
	var rerr *decision.RulesError
	if errors.As(err, &rerr) {
		return &decision.RulesError{Problems: locateProblems(rerr.Problems, source)}
	}
	return err
}

func locateProblems(ps []decision.Problem, source string) []decision.Problem {
	out := make([]decision.Problem, len(ps))
	for i, p := range ps {
		if p.File == "" && p.Line > 0 {
			p.File = source
		}
		out[i] = p
	}
	return out
}
