package server

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	redirectv1 "github.com/redirectd/redirectd/proto/redirect/v1"
)

// TestWatchIgnoresNeighbours: a log file written every 100 ms beside the
// rules file must not postpone a reload. Before the watcher looked at
// event names, every write reset the debounce and the new rules never
// loaded while the neighbour was busy.
func TestWatchIgnoresNeighbours(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(versionRules("v1")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Rules = path
	cfg.ReloadDebounce = 300 * time.Millisecond
	r := start(t, cfg)
	c := redirectv1.NewDecisionServiceClient(dial(t, r.GRPCAddr()))
	waitForLocation(t, c, "/new-v1")

	// The busy neighbour: at most 100 writes (10 s), stopped when the
	// test ends.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 100 && ctx.Err() == nil; i++ {
			os.WriteFile(filepath.Join(dir, "access.log"), []byte(strconv.Itoa(i)), 0o644)
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}()
	time.Sleep(350 * time.Millisecond) // the neighbour is writing before the change

	changed := time.Now()
	if err := os.WriteFile(path+".new", []byte(versionRules("v2")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	// The debounce is 300 ms; 3 s leaves room for a loaded machine.
	deadline := changed.Add(3 * time.Second)
	for {
		resp, err := c.Decide(context.Background(), &redirectv1.DecideRequest{Method: "GET", Host: "example.com", Path: "/old"})
		if err == nil && resp.GetLocation() == "/new-v2" {
			t.Logf("reloaded %v after the change", time.Since(changed).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a neighbour written every 100 ms held the reload for over 3 s (debounce 300 ms); answer %v, error %v", resp.GetLocation(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
