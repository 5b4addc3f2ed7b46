package console

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/redirectd/redirectd/decision"
)

const (
	// maxFormBytes bounds a form that is not a file upload: one rule's
	// YAML is a few hundred bytes.
	maxFormBytes = 1 << 20
	// maxUploadBytes bounds an uploaded rules file: a million rules in
	// canonical YAML are about 150 MB.
	maxUploadBytes = 256 << 20
)

type sessionKey struct{}

func withSession(r *http.Request, session string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), sessionKey{}, session))
}

func sessionOf(r *http.Request) string {
	s, _ := r.Context().Value(sessionKey{}).(string)
	return s
}

// view is what every page's layout gets; Page is the page's own data.
type view struct {
	Title string
	Nav   string // the path of the current section, for aria-current
	CSRF  string
	Auth  bool // signed in with a token: show "sign out"
	Page  any
}

type errorPage struct{ Message string }

type loginPage struct{ Next, Message string }

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"query":     url.QueryEscape,
	"edit":      func(v view, f editForm) view { v.Page = &f; return v },
	"path":      url.PathEscape,
	"short":     func(hash string) string { return hash[:min(len(hash), 12)] },
	"sparkline": sparkline,
	"sum": func(xs []uint32) uint64 {
		var n uint64
		for _, x := range xs {
			n += uint64(x)
		}
		return n
	},
}

func (c *Console) parsePages() error {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/edit.html")
	if err != nil {
		return fmt.Errorf("console templates: %w", err)
	}
	names, err := files.ReadDir("templates")
	if err != nil {
		return err
	}
	c.pages = map[string]*template.Template{}
	for _, e := range names {
		name := strings.TrimSuffix(e.Name(), ".html")
		if name == "layout" || name == "edit" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(files, "templates/"+e.Name())
		if err != nil {
			return fmt.Errorf("console template %s: %w", e.Name(), err)
		}
		c.pages[name] = t
	}
	// The editor page is layout.html with edit.html's content.
	c.pages["edit"] = layout
	return nil
}

// render writes a page; a template error is a bug, logged and answered 500.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page, title string, data any) {
	v := view{Title: title, Nav: "/" + strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)[0], Auth: c.opts.Token != "", Page: data}
	if s := sessionOf(r); s != "" {
		v.CSRF = c.csrf(s)
	}
	var b bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&b, "layout.html", v); err != nil {
		c.opts.Log.Error("console page failed", "page", page, "error", err)
		http.Error(w, "internal error; the server log has the details", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// index is the serving set, or answers 503 and nil before the first load.
func (c *Console) index(w http.ResponseWriter, r *http.Request) *decision.Index {
	ix := c.b.Index()
	if ix == nil {
		c.render(w, r, http.StatusServiceUnavailable, "error", "Not ready", &errorPage{Message: "No rule set is loaded yet; the daemon is starting or its rules file was rejected (see its log)."})
	}
	return ix
}

// statusPage is what the daemon serves.
type statusPage struct {
	Info     decision.Info
	Total    int
	Kinds    []kindCount
	Reloads  []Reload
	Warnings []decision.Problem
	More     int // warnings not shown
	Writable error
}

type kindCount struct {
	Kind  string
	Count int
}

// mostWarnings bounds the warnings a page lists: a generated set may carry
// thousands (redirectctl lint lists them all).
const mostWarnings = 200

func (c *Console) serveStatus(w http.ResponseWriter, r *http.Request) {
	ix := c.index(w, r)
	if ix == nil {
		return
	}
	p := &statusPage{Info: ix.Info(), Total: ix.Len(), Reloads: c.b.Reloads(), Writable: c.b.Writable()}
	for _, k := range []decision.MatchKind{decision.MatchExact, decision.MatchPrefix, decision.MatchPattern, decision.MatchRegex} {
		p.Kinds = append(p.Kinds, kindCount{k.String(), ix.Count(k)})
	}
	p.Warnings = ix.Warnings()
	if len(p.Warnings) > mostWarnings {
		p.More = len(p.Warnings) - mostWarnings
		p.Warnings = p.Warnings[:mostWarnings]
	}
	c.render(w, r, http.StatusOK, "status", "Status", p)
}

// sparkline draws per-minute counts as an inline SVG of bars, grouped so
// a day fits a phone's width: 96 bars of 15 minutes.
func sparkline(perMinute []uint32) template.HTML {
	if len(perMinute) == 0 {
		return ""
	}
	const bars = 96
	group := (len(perMinute) + bars - 1) / bars
	sums := make([]uint64, 0, bars)
	var peak uint64
	for i := 0; i < len(perMinute); i += group {
		var s uint64
		for _, x := range perMinute[i:min(i+group, len(perMinute))] {
			s += uint64(x)
		}
		sums = append(sums, s)
		peak = max(peak, s)
	}
	var b strings.Builder
	const height = 24
	fmt.Fprintf(&b, `<svg class="spark" viewBox="0 0 %d %d" preserveAspectRatio="none" role="img" aria-label="hits per %d minutes over the last 24 hours, peak %d"><title>hits per %d minutes, last 24 hours (peak %d)</title>`, len(sums)*2, height, group, peak, group, peak)
	for i, s := range sums {
		if s == 0 {
			continue
		}
		h := max(1, int(s*height/max(peak, 1)))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="1.6" height="%d"/>`, i*2, height-h, h)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // built from numbers only
}
