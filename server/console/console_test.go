package console

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redirectd/redirectd/decision"
)

// staticBackend serves a fixed index and refuses every change.
type staticBackend struct{ ix *decision.Index }

func (b staticBackend) Index() *decision.Index             { return b.ix }
func (staticBackend) Hits(id string) RuleHits              { return RuleHits{RuleID: id} }
func (staticBackend) EachHit(func(RuleHits) bool)          {}
func (staticBackend) PerMinute(string, time.Time) []uint32 { return nil }
func (staticBackend) Reloads() []Reload                    { return nil }
func (staticBackend) Writable() error                      { return io.ErrClosedPipe }
func (staticBackend) Put(context.Context, string, *decision.Rule) (Written, error) {
	return Written{}, io.ErrClosedPipe
}
func (staticBackend) Delete(context.Context, string, string) (Written, error) {
	return Written{}, io.ErrClosedPipe
}
func (staticBackend) Apply(context.Context, string, []decision.Rule) (Written, error) {
	return Written{}, io.ErrClosedPipe
}
func (staticBackend) Lint(string, []byte) ([]decision.Rule, []decision.Problem, error) {
	return nil, nil, io.ErrClosedPipe
}

const testToken = "0123456789abcdef0123"

func newTestConsole(t *testing.T, token string) *httptest.Server {
	t.Helper()
	ix, _, err := decision.Build([]decision.Rule{
		{ID: "docs-moved", Host: "example.com", Path: "/docs", Match: decision.MatchPrefix, To: "https://docs.example.com", Intent: decision.IntentPermanent},
		{ID: "form-moved", Host: "example.com", Path: "/form", To: "/form2", Intent: decision.IntentTemporary},
		{ID: "form2-moved", Host: "example.com", Path: "/form2", To: "/form3", Intent: decision.IntentTemporary},
	}, decision.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(staticBackend{ix}, Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, cl *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := cl.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRefusedWithoutToken(t *testing.T) {
	srv := newTestConsole(t, testToken)
	for _, path := range []string{"/", "/trace?url=https://example.com/docs", "/rules", "/rules/docs-moved"} {
		code, body := get(t, srv.Client(), srv.URL+path)
		if code != http.StatusUnauthorized || !strings.Contains(body, `name="token"`) || strings.Contains(body, "docs.example.com") {
			t.Errorf("GET %s without a session: %d, want 401 and the login form without rule data", path, code)
		}
	}
	// A forged cookie is no session.
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req.AddCookie(&http.Cookie{Name: cookieName, Value: "99999999999.deadbeef"})
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged session cookie: %d, want 401", resp.StatusCode)
	}
	// A wrong token does not sign in.
	resp, err = srv.Client().PostForm(srv.URL+"/login", url.Values{"token": {"wrong-token-wrong-token"}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("wrong token: %d with %d cookies, want 401 and none", resp.StatusCode, len(resp.Cookies()))
	}
}

// signIn returns a client holding a session.
func signIn(t *testing.T, srv *httptest.Server) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar}
	resp, err := cl.PostForm(srv.URL+"/login", url.Values{"token": {testToken}, "next": {"/rules"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/rules" {
		t.Fatalf("sign in: %d at %s, want 200 at /rules", resp.StatusCode, resp.Request.URL.Path)
	}
	u, _ := url.Parse(srv.URL)
	for _, ck := range jar.Cookies(u) {
		if ck.Name == cookieName {
			return cl
		}
	}
	t.Fatal("no session cookie after sign in")
	return nil
}

func TestSessionCookieAttributes(t *testing.T) {
	srv := newTestConsole(t, testToken)
	cl := srv.Client()
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := cl.PostForm(srv.URL+"/login", url.Values{"token": {testToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{cookieName + "=", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %q", sc, want)
		}
	}
	if strings.Contains(sc, "Secure") {
		t.Errorf("Set-Cookie %q is Secure on a plain HTTP listener: the browser would never send it back", sc)
	}
}

func TestPostWithoutCSRFRefused(t *testing.T) {
	srv := newTestConsole(t, testToken)
	cl := signIn(t, srv)
	resp, err := cl.PostForm(srv.URL+"/logout", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /logout without csrf: %d, want 403", resp.StatusCode)
	}
	_, body := get(t, cl, srv.URL+"/")
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("status page has no csrf field in its sign-out form")
	}
	resp, err = cl.PostForm(srv.URL+"/logout", url.Values{"csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/login" {
		t.Errorf("POST /logout with csrf ended at %s, want /login", resp.Request.URL.Path)
	}
}

func TestTrace(t *testing.T) {
	srv := newTestConsole(t, "")
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"url=https://example.com/docs/a&method=GET", []string{`id="status">301<`, "https://docs.example.com/a", "docs-moved", "A browser will request https://docs.example.com/a with GET"}},
		{"url=https://example.com/form&method=POST", []string{`id="status">307<`, "A browser will repeat this POST to /form2 with the same body", "form-moved"}},
		{"url=https://example.com/form&method=POST&protocol=HTTP/1.0", []string{`id="status">302<`, "A browser will follow with a GET to /form2 and drop the POST&#39;s body"}},
		{"url=https://example.com/nothing", []string{"No rule applies"}},
		{"url=/docs", []string{"give an absolute http or https URL"}},
	} {
		_, body := get(t, srv.Client(), srv.URL+"/trace?"+tc.query)
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("trace %s: page lacks %q", tc.query, w)
			}
		}
	}
}

func TestSearchAndRule(t *testing.T) {
	srv := newTestConsole(t, "")
	_, body := get(t, srv.Client(), srv.URL+"/rules?q=form&field=path")
	if !strings.Contains(body, "/rules/form-moved") || !strings.Contains(body, "/rules/form2-moved") || strings.Contains(body, "/rules/docs-moved") {
		t.Errorf("search path contains \"form\": want form-moved and form2-moved only:\n%s", body)
	}
	_, body = get(t, srv.Client(), srv.URL+"/rules/form-moved")
	for _, w := range []string{"id: form-moved", `redirected by <a href="/rules/form2-moved">`} {
		if !strings.Contains(body, w) {
			t.Errorf("rule page lacks %q", w)
		}
	}
	_, body = get(t, srv.Client(), srv.URL+"/rules/form2-moved?in=1")
	if !strings.Contains(body, `redirects again: <a href="/rules/form-moved">form-moved</a>.`) {
		t.Errorf("rule page of form2-moved does not name form-moved as leading to it:\n%s", body)
	}
	if code, _ := get(t, srv.Client(), srv.URL+"/rules/nope"); code != http.StatusNotFound {
		t.Errorf("unknown rule: %d, want 404", code)
	}
}
