package server

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultReloadDebounce is how long the watcher waits after the last change
// of the rules file before re-reading it: long enough for an
// editor's truncate-and-write or a ConfigMap swap to finish.
const DefaultReloadDebounce = 250 * time.Millisecond

// Watch reloads the rules file whenever it changes, until ctx is done. It watches the directory rather than the file because the file
// is usually replaced, not written: an editor renames a temp file over it,
// and a Kubernetes ConfigMap update swaps the "..data" symlink the file
// points through, so a watch on the file itself would be lost. When the
// path is a symlink, the directory it resolves to is watched too, so an
// edit of the link's target is seen. Every change is re-read through the
// path; an unchanged content hash is skipped (Reload).
func (s *RuleStore) Watch(ctx context.Context, debounce time.Duration) error {
	if debounce <= 0 {
		debounce = DefaultReloadDebounce
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch rules %s: %w", s.Path, err)
	}
	defer w.Close()
	dir := filepath.Dir(s.Path)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch rules directory %s: %w", dir, err)
	}
	s.Log.Info("watching rules", "path", s.Path, "directory", dir, "debounce", debounce)

	// Only events naming the rules file, its symlink target or a
	// ConfigMap's "..data" link reset the debounce: a log file written
	// beside the rules every 100 ms would otherwise postpone a reload for
	// as long as it is written (README, "Reloading the rules file").
	path := filepath.Clean(s.Path)
	dataLink := filepath.Join(dir, "..data")
	resolvedDir, target := "", ""
	concerns := func(name string) bool {
		name = filepath.Clean(name)
		return name == path || name == dataLink || name == target
	}
	followLink := func() {
		t, err := filepath.EvalSymlinks(s.Path)
		if err != nil {
			return
		}
		target = t
		d := filepath.Dir(t)
		if d == dir || d == resolvedDir {
			return
		}
		if resolvedDir != "" {
			_ = w.Remove(resolvedDir) // often already gone: a ConfigMap swap deletes it
		}
		resolvedDir = ""
		if err := w.Add(d); err == nil {
			resolvedDir = d
		}
	}
	followLink()
	// A change between the caller's Load and the watch being set up would
	// otherwise go unseen until the next one.
	_, _ = s.Reload()

	timer := time.NewTimer(debounce)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod || !concerns(ev.Name) {
				continue // touch, a backup tool, or another file: the rules did not change
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// Overflow loses events, not the watch: re-read to be safe.
			s.Log.Warn("rules watch", "error", err)
			timer.Reset(debounce)
		case <-timer.C:
			// Errors are logged and counted by Reload; the last good set
			// keeps serving.
			_, _ = s.Reload()
			followLink()
		}
	}
}
