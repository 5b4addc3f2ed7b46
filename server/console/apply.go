package console

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/redirectd/redirectd/decision"
)

// pendingUploads holds uploaded rules files between their preview and
// their apply: at most maxPending, each for pendingTTL, so uploads that
// are never applied cannot pile up in memory.
type pendingUploads struct {
	mu    sync.Mutex
	files map[string]pendingFile
}

type pendingFile struct {
	name    string
	data    []byte
	expires time.Time
}

const (
	maxPending = 4
	pendingTTL = 15 * time.Minute
)

func (p *pendingUploads) put(f pendingFile, now time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.files == nil {
		p.files = map[string]pendingFile{}
	}
	var oldest string
	for id, g := range p.files {
		if now.After(g.expires) {
			delete(p.files, id)
		} else if oldest == "" || g.expires.Before(p.files[oldest].expires) {
			oldest = id
		}
	}
	if len(p.files) >= maxPending {
		delete(p.files, oldest)
	}
	b := make([]byte, 16)
	rand.Read(b)
	id := hex.EncodeToString(b)
	p.files[id] = f
	return id
}

// take removes and returns a pending file.
func (p *pendingUploads) take(id string, now time.Time) (pendingFile, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, ok := p.files[id]
	delete(p.files, id)
	return f, ok && !now.After(f.expires)
}

type applyPage struct {
	Writable error
	Name     string
	Rules    int
	Problems []decision.Problem
	Valid    bool
	Pending  string
	Version  uint64
	Hash     string
	Error    string
	Applied  string
}

func (c *Console) serveApply(w http.ResponseWriter, r *http.Request) {
	ix := c.index(w, r)
	if ix == nil {
		return
	}
	c.render(w, r, http.StatusOK, "apply", "Apply a rules file", &applyPage{Writable: c.b.Writable(), Version: ix.Info().Version, Hash: ix.Info().Hash, Applied: r.URL.Query().Get("applied")})
}

// previewApply lints an uploaded rules file exactly as a load would and
// shows the result; a valid file can then be applied as a whole.
func (c *Console) previewApply(w http.ResponseWriter, r *http.Request) {
	ix := c.index(w, r)
	if ix == nil {
		return
	}
	p := &applyPage{Writable: c.b.Writable(), Version: ix.Info().Version, Hash: ix.Info().Hash}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		p.Error = "file: choose a rules file (YAML, JSON or JSON Lines) to upload: " + err.Error()
		c.render(w, r, http.StatusBadRequest, "apply", "Apply a rules file", p)
		return
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		p.Error = fmt.Sprintf("file %s: %v (at most %d MiB)", hdr.Filename, err, maxUploadBytes>>20)
		c.render(w, r, http.StatusBadRequest, "apply", "Apply a rules file", p)
		return
	}
	p.Name = hdr.Filename
	rules, warnings, err := c.b.Lint(hdr.Filename, data)
	var rerr *decision.RulesError
	switch {
	case errors.As(err, &rerr):
		p.Problems = rerr.All()
	case err != nil:
		p.Error = err.Error()
	default:
		p.Valid, p.Rules, p.Problems = true, len(rules), warnings
		p.Pending = c.pending.put(pendingFile{name: hdr.Filename, data: data, expires: c.opts.Now().Add(pendingTTL)}, c.opts.Now())
	}
	if len(p.Problems) > mostWarnings {
		p.Problems = p.Problems[:mostWarnings]
	}
	c.render(w, r, http.StatusOK, "apply", "Apply "+hdr.Filename+"?", p)
}

// confirmApply replaces the whole set with a previewed file, unless the
// set changed since the preview.
func (c *Console) confirmApply(w http.ResponseWriter, r *http.Request) {
	p := &applyPage{Writable: c.b.Writable()}
	exp, err := expected(r)
	if err == nil {
		f, ok := c.pending.take(r.PostFormValue("pending"), c.opts.Now())
		if !ok {
			err = fmt.Errorf("the previewed file is no longer kept (a preview lasts %v, and only the last %d are kept); upload it again", pendingTTL, maxPending)
		} else {
			var rules []decision.Rule
			if rules, _, err = c.b.Lint(f.name, f.data); err == nil {
				var done Written
				if done, err = c.b.Apply(r.Context(), exp, rules); err == nil {
					http.Redirect(w, r, "/apply?applied="+strconv.FormatUint(done.Version, 10), http.StatusSeeOther)
					return
				}
			}
		}
	}
	status := http.StatusBadRequest
	if errors.Is(err, ErrConflict) {
		status = http.StatusConflict
		err = fmt.Errorf("Conflict: nothing was written. %w; upload the file again to preview it against the serving set", err)
	}
	p.Error = err.Error()
	c.render(w, r, status, "apply", "Rules file not applied", p)
}
