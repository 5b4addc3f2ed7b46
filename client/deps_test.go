package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientNeverImportsServer keeps the client and redirectctl free of the
// daemon (README "Layout and development"): redirectctl --rules decides
// with the decision library and the API's own conversion, without the
// daemon's listeners, Prometheus or fsnotify. Test files may still start a
// real daemon; go list -deps without -test does not count them.
func TestClientNeverImportsServer(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH; run: go list -deps ./client/... | grep /redirectd/server")
	}
	const module = "github.com/redirectd/redirectd"
	out, err := exec.Command(goCmd, "list", "-deps", module+"/client/...").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps %s/client/...: %v\n%s", module, err, stderr)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) == 0 {
		t.Fatal("go list -deps listed no packages")
	}
	for _, p := range pkgs {
		if p == module+"/server" || strings.HasPrefix(p, module+"/server/") {
			t.Errorf("a client package depends on %s; the client and redirectctl must never import the daemon", p)
		}
	}
}
