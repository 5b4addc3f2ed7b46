package server

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/redirectd/redirectd/decision"
)

// screenshotDir is REDIRECTD_SCREENSHOTS, read by TestMain before it
// clears the REDIRECTD_* settings.
var screenshotDir string

// TestConsoleInBrowser starts the daemon and drives its console in
// headless Chromium: a refused request without the token, sign-in, a
// trace, a search, a rule page and an edit that meets a version conflict.
// REDIRECTD_SCREENSHOTS=DIR writes a screenshot of each page there.
func TestConsoleInBrowser(t *testing.T) {
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("no Chromium to drive the console with: apt-get install -y chromium")
	}
	cfg := testConfig()
	cfg.Rules = writeRules(t, t.TempDir(), "rules.yaml", `rules:
  - id: docs-moved
    host: example.com
    path: /docs
    match: prefix
    to: https://docs.example.com
    intent: permanent
  - id: form-moved
    host: example.com
    path: /form
    to: /form2
`)
	cfg.AdminToken = "browser-test-token-0123456789"
	r := start(t, cfg)
	base := "http://" + r.ConsoleAddr()

	// Chromium leaves a directory with its singleton socket in TMPDIR on
	// every run: it gets one of its own, removed once it has exited.
	tmp, err := os.MkdirTemp("", "redirectd-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1000, 900), chromedp.Env("TMPDIR="+tmp))...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	shots := screenshotDir
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			if shots == "" {
				return chromedp.Void{}, nil
			}
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(shots, "console-"+name+".png"), png, 0o644)
		}
	}
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	text := func(step, sel string, want string) {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if !strings.Contains(got, want) {
			t.Errorf("%s: %s reads %q, want it to contain %q", step, sel, got, want)
		}
	}

	// Without the token: the rule page is refused with the sign-in form.
	run("refused", chromedp.Navigate(base+"/rules/docs-moved"), chromedp.WaitVisible("#token"), shot("login"))
	body, err := chromedp.Run(ctx, chromedp.Text("main"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(body, "docs.example.com") {
		t.Errorf("the refused page shows rule data:\n%s", body)
	}
	run("sign in", chromedp.SendKeys("#token", cfg.AdminToken), chromedp.Submit("#token"),
		chromedp.WaitVisible("#yaml"))
	text("rule page after sign-in", "#fields", "id: docs-moved")

	// Trace, with the keyboard only: type the URL, pick POST, submit.
	run("trace", chromedp.Navigate(base+"/trace"), chromedp.WaitVisible("#url"),
		chromedp.SendKeys("#url", "https://example.com/form?x=1"),
		chromedp.SetValue("#method", "POST"),
		chromedp.Submit("#url"), chromedp.WaitVisible("#sentence"), shot("trace"))
	text("trace", "#status", "307")
	text("trace", "#sentence", "A browser will repeat this POST to /form2?x=1 with the same body")
	text("trace", "#candidates", "form-moved")

	// Search by path, then open the rule.
	run("search", chromedp.Navigate(base+"/rules"), chromedp.WaitVisible("#q"),
		chromedp.SendKeys("#q", "/docs"), chromedp.SetValue("#field", "path"),
		// The page searched from lists every rule in #results too: wait
		// for the one that says it searched, or the old page's table could
		// be found and its node lose to the navigation ("No node with
		// given id found"). A DOM search, not a script, so the old page's
		// script context ending mid-wait cannot fail it either.
		chromedp.Submit("#q"), chromedp.WaitVisible(`//p[@id="summary"][contains(., "matching rules")]`),
		chromedp.WaitVisible("#results"), shot("search"))
	text("search", "#results", "docs-moved")
	run("open rule", chromedp.Click(`#results a[href="/rules/docs-moved"]`),
		chromedp.WaitVisible("#chain-out"), shot("rule"))

	// Someone else changes the set while the page is open: saving it is a
	// conflict that writes nothing.
	if _, _, err := r.store.Update(context.Background(), Precondition{}, Edit{Puts: []decision.Rule{{ID: "other", Path: "/other", To: "/elsewhere"}}}); err != nil {
		t.Fatal(err)
	}
	run("edit", chromedp.SetValue("#yaml", "rules:\n  - id: docs-moved\n    path: /docs\n    to: /stale\n"),
		chromedp.Submit("#yaml"), chromedp.WaitVisible("#edit-error"), shot("conflict"))
	text("edit", "#edit-error", "Conflict: nothing was written")
	if file, _ := os.ReadFile(cfg.Rules); strings.Contains(string(file), "/stale") {
		t.Errorf("the conflicting edit reached the rules file:\n%s", file)
	}
	run("status", chromedp.Navigate(base+"/"), chromedp.WaitVisible("#version"), shot("status"))

	// At a phone's width every page fits without scrolling sideways
	// (tables scroll inside their own box).
	run("phone", chromedp.EmulateViewport(390, 844))
	for _, path := range []string{"/", "/trace?url=https://example.com/form&method=POST", "/rules?q=/", "/rules/docs-moved", "/usage", "/apply"} {
		run("phone "+path, chromedp.Navigate(base+path), chromedp.WaitVisible("main"))
		width, err := chromedp.Run(ctx, chromedp.Evaluate[int]("document.documentElement.scrollWidth"))
		if err != nil {
			t.Fatal(err)
		}
		if width > 390 {
			t.Errorf("%s at 390 px wide is %d px wide: it scrolls sideways", path, width)
		}
	}
	run("phone shot", chromedp.Navigate(base+"/trace?url=https://example.com/form&method=POST"), chromedp.WaitVisible("#sentence"), shot("phone-trace"))
}
