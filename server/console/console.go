// Package console is redirectd's web console (README "Web console"): pages
// for the people who own the redirects to trace a URL, find a rule, see
// what is used, see what the daemon serves and, where the rule source
// takes writes (a writable rules file, etcd), change rules. Pages are
// html/template rendered on the server and embedded in the binary; they
// need no JavaScript.
//
// The console reads the serving set from a decision.Index and changes it
// through a Backend, which the daemon (package server) implements with the
// admin API's own code path.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redirectd/redirectd/decision"
)

// ErrConflict is wrapped by a Backend's write refused because the rule set
// changed since the version the person saw (expected_hash).
var ErrConflict = errors.New("version conflict")

// Backend is what the console needs from the daemon.
type Backend interface {
	// Index is the serving set; nil before the first load.
	Index() *decision.Index
	// Hits is one rule's hits and last hit since start.
	Hits(id string) RuleHits
	// EachHit calls fn for every rule hit since start, until it returns
	// false.
	EachHit(fn func(RuleHits) bool)
	// PerMinute is a rule's hits per minute over the last day up to now,
	// oldest first; nil when the rule's minutes are not kept.
	PerMinute(id string, now time.Time) []uint32
	// Reloads are the last rule-set changes, applied or refused, newest
	// first.
	Reloads() []Reload
	// Writable is nil when rules can be changed, else why not.
	Writable() error
	// Put, Delete and Apply change the rules durably, through the
	// configured rule source. expected is the hash of the version the
	// person saw (decision.Info.Hash: unlike the number, it survives a
	// restart); any other serving set is an error wrapping ErrConflict and
	// nothing is written. ctx is the request's: a write that waits on
	// its store (etcd) stops when the browser goes away.
	Put(ctx context.Context, expected string, r *decision.Rule) (Written, error)
	Delete(ctx context.Context, expected string, id string) (Written, error)
	Apply(ctx context.Context, expected string, rules []decision.Rule) (Written, error)
	// Lint parses and checks a rules file as a load would, applying
	// nothing: the rules and their warnings, or a *decision.RulesError.
	Lint(name string, data []byte) ([]decision.Rule, []decision.Problem, error)
}

// RuleHits is one rule's usage since the daemon started.
type RuleHits struct {
	RuleID  string
	Hits    uint64
	LastHit time.Time // zero when never hit
}

// Reload is one applied or refused rule-set change.
type Reload struct {
	At      time.Time
	Source  string
	Applied bool
	Version uint64
	Rules   int
	Error   string
}

// Written is the outcome of a change: the version it made and the
// warnings of the new set.
type Written struct {
	Version  uint64
	Warnings []decision.Problem
}

// Options configure the console.
type Options struct {
	// Token, when set, must be entered once on the login page; it is then
	// kept as a session cookie. Empty: no login (a loopback listener, or
	// one whose clients present certificates).
	Token string
	// Secure marks cookies Secure: the listener serves TLS.
	Secure bool
	// SessionTTL is how long a session lasts; 0 means 12 hours.
	SessionTTL time.Duration
	Log        *slog.Logger
	Now        func() time.Time
}

//go:embed templates/*.html static/*
var files embed.FS

// Console serves the web console.
type Console struct {
	b     Backend
	opts  Options
	token [sha256.Size]byte
	// key signs session cookies and CSRF tokens. It is made at start, so a
	// restart ends every session.
	key   []byte
	pages map[string]*template.Template
	mux   *http.ServeMux
	// pending holds uploaded rules files between their preview and their
	// apply (apply.go).
	pending pendingUploads
	// lastRefusal spaces the log lines of refused logins.
	lastRefusal atomic.Int64
}

// New returns the console over b.
func New(b Backend, opts Options) (*Console, error) {
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	c := &Console{b: b, opts: opts, key: make([]byte, 32), mux: http.NewServeMux()}
	rand.Read(c.key) // never fails (crypto/rand)
	c.token = sha256.Sum256([]byte(opts.Token))
	if err := c.parsePages(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(files, "static")
	c.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET /login", c.serveLogin)
	c.mux.HandleFunc("POST /login", c.login)
	c.mux.HandleFunc("POST /logout", c.logout)
	c.mux.HandleFunc("GET /{$}", c.serveStatus)
	c.mux.HandleFunc("GET /trace", c.serveTrace)
	c.mux.HandleFunc("GET /rules", c.serveSearch)
	c.mux.HandleFunc("GET /rules/{id}", c.serveRule)
	c.mux.HandleFunc("POST /rules", c.putRule)
	c.mux.HandleFunc("POST /rules/{id}/delete", c.deleteRule)
	c.mux.HandleFunc("GET /usage", c.serveUsage)
	c.mux.HandleFunc("GET /apply", c.serveApply)
	c.mux.HandleFunc("POST /apply", c.previewApply)
	c.mux.HandleFunc("POST /apply/confirm", c.confirmApply)
	return c, nil
}

// ServeHTTP checks the session and, for a change, the CSRF token, then
// serves the page. Cross-origin requests that change something are
// refused before that (net/http.CrossOriginProtection, from the browser's
// Sec-Fetch-Site and Origin headers).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Pages need nothing from elsewhere and run no script; they may not be
	// framed (clickjacking) and do not tell other sites which rule was
	// looked at.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	crossOrigin.Handler(http.HandlerFunc(c.serve)).ServeHTTP(w, r)
}

var crossOrigin = http.NewCrossOriginProtection()

func (c *Console) serve(w http.ResponseWriter, r *http.Request) {
	public := strings.HasPrefix(r.URL.Path, "/static/") || r.URL.Path == "/login"
	session, ok := c.session(r)
	switch {
	case public:
	case !ok && c.opts.Token != "":
		c.refuse(w, r)
		return
	case !ok:
		// No token to ask for: the session exists only to bind CSRF
		// tokens to this browser.
		session = c.newSession(w)
	}
	if r.Method == http.MethodPost {
		limit := int64(maxFormBytes)
		if r.URL.Path == "/apply" {
			limit = maxUploadBytes
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	if r.Method == http.MethodPost && r.URL.Path != "/login" {
		if !c.validCSRF(session, r.PostFormValue("csrf")) {
			c.render(w, r, http.StatusForbidden, "error", "Form expired", &errorPage{Message: "This form's security token is missing or stale (the daemon restarted, or the form came from another page). Nothing was changed. Go back, reload the page and submit again."})
			return
		}
	}
	c.mux.ServeHTTP(w, withSession(r, session))
}

// refuse answers a request without a valid session: 401 with the login
// form, which returns to the page asked for.
func (c *Console) refuse(w http.ResponseWriter, r *http.Request) {
	next := "/"
	if r.Method == http.MethodGet {
		next = r.URL.RequestURI()
	}
	c.render(w, r, http.StatusUnauthorized, "login", "Sign in", &loginPage{Next: next, Message: "Sign in with the admin token to use the console."})
}

const cookieName = "redirectd_console"

// A session cookie is "expiry.mac": the expiry in Unix seconds and an
// HMAC-SHA256 of it under the console's key. Nothing is kept on the
// server; a session ends at its expiry, on logout in that browser, or
// when the daemon restarts.
func (c *Console) sign(purpose, value string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(purpose + "\x00" + value))
	return hex.EncodeToString(m.Sum(nil))
}

func (c *Console) session(r *http.Request) (string, bool) {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return "", false
	}
	exp, mac, ok := strings.Cut(ck.Value, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(c.sign("session", exp))) {
		return "", false
	}
	t, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || c.opts.Now().Unix() >= t {
		return "", false
	}
	return ck.Value, true
}

func (c *Console) newSession(w http.ResponseWriter) string {
	exp := strconv.FormatInt(c.opts.Now().Add(c.opts.SessionTTL).Unix(), 10)
	v := exp + "." + c.sign("session", exp)
	http.SetCookie(w, c.cookie(v, int(c.opts.SessionTTL/time.Second)))
	return v
}

// cookie is the session cookie: out of reach of scripts (HttpOnly), never
// sent on a request another site starts (SameSite=Strict, RFC 6265bis
// section 5.4.7), and only over TLS when the listener serves TLS.
func (c *Console) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: cookieName, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.opts.Secure}
}

// csrf is the token every form that changes something carries: bound to
// the session, so a page of another site cannot know it.
func (c *Console) csrf(session string) string { return c.sign("csrf", session) }

func (c *Console) validCSRF(session, got string) bool {
	return session != "" && hmac.Equal([]byte(got), []byte(c.csrf(session)))
}

func (c *Console) serveLogin(w http.ResponseWriter, r *http.Request) {
	if c.opts.Token == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", "Sign in", &loginPage{Next: safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	if c.opts.Token == "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	// Digests of a fixed size are compared, as the admin listener does
	// (server/auth.go): the timing says nothing of the token's length.
	got := sha256.Sum256([]byte(r.PostFormValue("token")))
	if subtle.ConstantTimeCompare(got[:], c.token[:]) != 1 {
		now := c.opts.Now().UnixNano()
		if last := c.lastRefusal.Load(); now-last >= int64(time.Second) && c.lastRefusal.CompareAndSwap(last, now) {
			c.opts.Log.Warn("console login refused: wrong token", "remote", r.RemoteAddr)
		}
		c.render(w, r, http.StatusUnauthorized, "login", "Sign in", &loginPage{Next: next, Message: "That token is not the admin token (--admin-token or --admin-token-file). Try again."})
		return
	}
	c.newSession(w)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, c.cookie("", -1))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a return path on this console: a path, never another
// origin ("//evil.example" or "https://...").
func safeNext(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	return p
}

// expected reads the expected_hash field of a change form: the hash of
// the set the form was rendered from (README "Web console"). The hash, not
// the number, because the file store's number starts again at 1 when the
// daemon restarts, so a form from before a restart could name a number
// that now means another set.
func expected(r *http.Request) (string, error) {
	h := r.PostFormValue("expected_hash")
	if h == "" {
		return "", errors.New("expected_hash: the form does not say which version it was read at; reload the page and submit again")
	}
	return h, nil
}
