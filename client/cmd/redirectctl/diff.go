package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redirectd/redirectd/client/accesslog"
	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/decision/rulegen"
)

// diff replays a request stream or an access log against two rule sets
// and reports every request whose answer changes (README "diff"): the
// impact of a rule change on real traffic, before it ships. Both sets are
// built into the engine decide --rules uses and decided in this process,
// in parallel, while the log streams through in blocks; output keeps the
// log's order.

// changeKind is how an answer changed; a request counts under the first
// kind that applies, in this order.
type changeKind uint8

const (
	newRedirect changeKind = iota
	removedRedirect
	statusChanged
	targetChanged
	cacheChanged
	kindCount
)

var kindWords = [kindCount]string{"new redirect", "removed", "status changed", "target changed", "cache changed"}
var kindJSON = [kindCount]string{"newRedirect", "removed", "statusChanged", "targetChanged", "cacheChanged"}

// vary is the answer's Vary header, "" when none.
func vary(d *decision.Decision) string {
	for _, h := range d.Headers {
		if strings.EqualFold(h.Name, "Vary") {
			return h.Value
		}
	}
	return ""
}

// classify compares two answers to one request. Cache covers
// Cache-Control and Vary (RFC 9111 section 4.1): a pass can change too,
// when the conditions it consulted change.
func classify(before, after *decision.Decision) (changeKind, bool) {
	switch {
	case !before.Redirect && after.Redirect:
		return newRedirect, true
	case before.Redirect && !after.Redirect:
		return removedRedirect, true
	case before.Status != after.Status:
		return statusChanged, true
	case before.Location != after.Location:
		return targetChanged, true
	case before.Cache.CacheControl != after.Cache.CacheControl || vary(before) != vary(after):
		return cacheChanged, true
	}
	return 0, false
}

// answerText is one side of a change:
//
//	301 https://docs.example.com/x (public, max-age=86400; rule docs-moved)
//	pass (Vary: Cookie)
func answerText(d *decision.Decision) string {
	var b strings.Builder
	var notes []string
	if d.Redirect {
		fmt.Fprintf(&b, "%d %s", d.Status, d.Location)
		notes = append(notes, d.Cache.CacheControl)
	} else {
		b.WriteString("pass")
	}
	if v := vary(d); v != "" {
		notes = append(notes, "Vary: "+v)
	}
	if d.RuleID != "" {
		notes = append(notes, "rule "+d.RuleID)
	}
	if len(notes) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(notes, "; "))
	}
	return b.String()
}

// requestText is the request as a person reads it in a log, with the
// headers rules may have decided on: "GET https://www.example.com/a?x=1
// [cookie: beta=1]".
func requestText(r *decision.Request) string {
	target := r.Scheme + "://" + r.Host + r.Target
	switch {
	case r.Host == "" || !strings.HasPrefix(r.Target, "/"):
		target = r.Target
	case r.Scheme == "":
		target = r.Host + r.Target
	}
	return r.Method + " " + target + headersText(r.Headers)
}

// headersText lists a request's headers, which rules with conditions
// decide on: " [accept-language: de, cookie: beta=1]", sorted.
func headersText(h map[string]string) string {
	if len(h) == 0 {
		return ""
	}
	var b strings.Builder
	for i, name := range slices.Sorted(maps.Keys(h)) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(name + ": " + h[name])
	}
	return " [" + b.String() + "]"
}

// change is one request whose answer changed.
type change struct {
	line          int
	req           *decision.Request
	kind          changeKind
	before, after *decision.Decision
}

// badLine is a line that was not read, or a request the engine refused.
type badLine struct {
	line int
	err  error
}

// maxBadShown is how many bad lines are reported one by one.
const maxBadShown = 5

// blockResult is what a worker found in one block of the log.
type blockResult struct {
	seq      int
	bytes    int
	lines    int // lines in the block, blank ones included
	requests int // requests decided
	bad      int
	firstBad []badLine // at most maxBadShown
	kinds    [kindCount]int
	out      []byte  // the changes, written by diffRun.print
	buf      *[]byte // the block's buffer, for reuse
}

// block is a run of whole lines of the log.
type block struct {
	seq, firstLine int
	buf            *[]byte
	data           []byte
}

// blockSize is how much of the log a worker takes at a time: large enough
// that handing it over costs nothing beside deciding its lines, small
// enough that the workers in flight hold a few MiB.
const blockSize = 256 << 10

// readBlocks cuts r into blocks of whole lines and passes them to emit in
// order; a line longer than a block grows its block. Buffers come from
// pool and go back to it when a block has been decided.
func readBlocks(r io.Reader, pool *sync.Pool, emit func(block) bool) error {
	var carry []byte
	line := 1
	for seq := 0; ; seq++ {
		bp := pool.Get().(*[]byte)
		buf := append((*bp)[:0], carry...)
		eof := false
		cut := -1
		for !eof && cut < 0 {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			start := len(buf)
			for len(buf) < cap(buf) {
				n, err := r.Read(buf[len(buf):cap(buf)])
				buf = buf[:len(buf)+n]
				if errors.Is(err, io.EOF) {
					eof = true
					break
				}
				if err != nil {
					return err
				}
			}
			cut = bytes.LastIndexByte(buf[start:], '\n')
			if cut >= 0 {
				cut += start
			}
		}
		if eof {
			cut = len(buf) - 1
		}
		carry = append(carry[:0], buf[cut+1:]...)
		*bp = buf
		data := buf[:cut+1]
		if len(data) == 0 {
			pool.Put(bp)
			return nil
		}
		if !emit(block{seq: seq, firstLine: line, buf: bp, data: data}) {
			return nil
		}
		line += bytes.Count(data, []byte{'\n'})
		if eof {
			return nil
		}
	}
}

// diffRun is one comparison: the two indexes, how to read the log, the
// clock both sides share, and how a change is printed (in the workers, so
// that a log where most answers change is not printed on one core).
type diffRun struct {
	old, new *decision.Index
	parser   accesslog.Parser
	now      time.Time
	print    func(b []byte, c *change) []byte
}

// decideBlock reads and decides every line of b.
func (d *diffRun) decideBlock(b block) blockResult {
	res := blockResult{seq: b.seq, bytes: len(b.data), buf: b.buf}
	data := b.data
	for n := b.firstLine; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		res.lines++
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		req, err := d.parser.Parse(line)
		var before, after decision.Decision
		if err == nil {
			if before, err = d.old.Decide(&req, d.now); err == nil {
				after, err = d.new.Decide(&req, d.now)
			}
			if err != nil {
				err = fmt.Errorf("invalid request: %w", err)
			}
		}
		if err != nil {
			if res.bad++; len(res.firstBad) < maxBadShown {
				res.firstBad = append(res.firstBad, badLine{n, err})
			}
			continue
		}
		res.requests++
		if kind, changed := classify(&before, &after); changed {
			res.kinds[kind]++
			res.out = d.print(res.out, &change{line: n, req: &req, kind: kind, before: &before, after: &after})
		}
	}
	return res
}

// diffTotals is what the whole log gave.
type diffTotals struct {
	bytes                int64
	lines, requests, bad int
	firstBad             []badLine
	kinds                [kindCount]int
}

func (t *diffTotals) changed() int {
	n := 0
	for _, k := range t.kinds {
		n += k
	}
	return n
}

// run streams r through workers (one per core) and writes each block's
// changes to out in the log's order. progress, when not nil, is called
// a few times a second with the totals so far.
func (d *diffRun) run(ctx context.Context, r io.Reader, out io.Writer, progress func(*diffTotals)) (diffTotals, error) {
	workers := runtime.GOMAXPROCS(0)
	pool := &sync.Pool{New: func() any { b := make([]byte, 0, blockSize); return &b }}
	blocks := make(chan block, workers)
	results := make(chan blockResult, workers)
	// Blocks in flight, from read to reported: bounds the memory a slow
	// block can make the others pile up behind.
	inflight := make(chan struct{}, 4*workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var readErr error
	go func() {
		defer close(blocks)
		readErr = readBlocks(r, pool, func(b block) bool {
			select {
			case inflight <- struct{}{}:
			case <-ctx.Done():
				return false
			}
			select {
			case blocks <- b:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range blocks {
				select {
				case results <- d.decideBlock(b):
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	var tick <-chan time.Time
	if progress != nil {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	var totals diffTotals
	pending := map[int]*blockResult{}
	next := 0
	for {
		select {
		case res, ok := <-results:
			if !ok {
				// blocks is closed before results: readErr is set.
				return totals, readErr
			}
			pending[res.seq] = &res
			for p := pending[next]; p != nil; p = pending[next] {
				delete(pending, next)
				next++
				totals.bytes += int64(p.bytes)
				totals.lines += p.lines
				totals.requests += p.requests
				totals.bad += p.bad
				for _, b := range p.firstBad {
					if len(totals.firstBad) < maxBadShown {
						totals.firstBad = append(totals.firstBad, b)
					}
				}
				for k, n := range p.kinds {
					totals.kinds[k] += n
				}
				if _, err := out.Write(p.out); err != nil {
					return totals, err
				}
				pool.Put(p.buf)
				<-inflight
			}
		case <-tick:
			progress(&totals)
		case <-ctx.Done():
			return totals, ctx.Err()
		}
	}
}

// threeDigits rounds d to three significant digits: 331µs, 1.45s.
func threeDigits(d time.Duration) time.Duration {
	unit := time.Duration(1)
	for d/unit >= 1000 {
		unit *= 10
	}
	return d.Round(unit)
}

// isTerminal reports whether w is a terminal (a character device), where
// a progress line that rewrites itself helps and does not litter a file.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Machine output of --json: one object per changed request, then one
// summary; answers use DecideResponse's JSON names.
type (
	jsonAnswer struct {
		Redirect     bool   `json:"redirect"`
		StatusCode   int    `json:"statusCode,omitempty"`
		Location     string `json:"location,omitempty"`
		CacheControl string `json:"cacheControl,omitempty"`
		Vary         string `json:"vary,omitempty"`
		RuleID       string `json:"ruleId,omitempty"`
	}
	jsonChange struct {
		File    string              `json:"file"`
		Line    int                 `json:"line"`
		Kind    string              `json:"kind"`
		Request rulegen.RequestLine `json:"request"`
		Before  jsonAnswer          `json:"before"`
		After   jsonAnswer          `json:"after"`
	}
	jsonSummary struct {
		Summary struct {
			File       string         `json:"file"`
			Format     string         `json:"format"`
			Lines      int            `json:"lines"`
			Requests   int            `json:"requests"`
			BadLines   int            `json:"badLines"`
			Changed    int            `json:"changed"`
			Kinds      map[string]int `json:"kinds"`
			Exceeds    bool           `json:"exceedsMaxChanges"`
			MaxChanges int            `json:"maxChanges"`
		} `json:"summary"`
	}
)

// appendJSON appends v as one line of JSON. The values are plain structs
// of strings and numbers, which always marshal.
func appendJSON(b []byte, v any) []byte {
	buf := bytes.NewBuffer(b)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false) // a query's & stays &
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func toJSONAnswer(d *decision.Decision) jsonAnswer {
	a := jsonAnswer{Redirect: d.Redirect, Vary: vary(d), RuleID: d.RuleID}
	if d.Redirect {
		a.StatusCode, a.Location, a.CacheControl = d.Status, d.Location, d.Cache.CacheControl
	}
	return a
}

// serverIndex builds the serving rule set of the redirectd whose admin API
// a connects to, read through ListRules, with this redirectctl's options
// (the daemon's --permanent-max-age, --max-cache-age and --flatten-chains
// are not in the API: give the same ones here).
func (o *engineOptions) serverIndex(ctx context.Context, a *adminConn) (*decision.Index, string, error) {
	rs, ctx, done, err := a.dial(ctx)
	if err != nil {
		return nil, "", err
	}
	defer done()
	pbs, version, err := a.listRules(ctx, rs, maxPageSize)
	if err != nil {
		return nil, "", err
	}
	rules, err := serverRules(pbs)
	if err != nil {
		return nil, "", err
	}
	ix, _, err := decision.Build(rules, o.options())
	if err != nil {
		return nil, "", fmt.Errorf("the serving rules of %s: %w", a.conn.addr, err)
	}
	return ix, fmt.Sprintf("redirectd at %s (version %d)", a.conn.addr, version.GetNumber()), nil
}

// logHead is how much of the log Detect sees: its first lines.
const logHead = 64 << 10

// diffCommand is diff's command line.
type diffCommand struct {
	admin      adminConn
	opts       engineOptions
	fromServer bool
	rules      []string // OLD NEW, or NEW with --server
	requests   string
	logFormat  string
	host       string
	scheme     string
	maxChanges int
	asJSON     bool
}

func runDiff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("diff", "OLD NEW --requests FILE | --server ADDR NEW --requests FILE [flags]", stderr)
	var c diffCommand
	fs.StringVar(&c.requests, "requests", "", "the requests to replay: a `file` of JSON lines (gen --requests-out) or an access log; - for stdin")
	fs.StringVar(&c.logFormat, "log-format", "auto", "format of --requests: auto (detected from the first lines), "+accesslog.Names())
	fs.StringVar(&c.host, "host", "", "the `host` of every request in a log that names none (common, combined; Envoy lines whose authority is -)")
	fs.StringVar(&c.scheme, "scheme", "", "the `scheme` (http or https) of requests whose log line names none (every access log)")
	fs.IntVar(&c.maxChanges, "max-changes", 0, "exit 1 when more than `N` answers change")
	fs.BoolVar(&c.asJSON, "json", false, "print one JSON object per change, then a summary object")
	c.admin.register(fs)
	// Here an address replaces OLD, so it has no default.
	for _, name := range []string{"server", "admin"} {
		f := fs.Lookup(name)
		f.Usage, f.DefValue = "compare the rules served by the redirectd whose admin API is at this `address` (host:port) instead of OLD", ""
	}
	c.opts.register(fs, "")
	var err error
	if c.rules, err = parseArgs(fs, args); err != nil {
		return err
	}
	c.fromServer = c.admin.conn.set("server") || c.admin.conn.set("admin")
	switch {
	case c.fromServer && len(c.rules) != 1:
		return usagef("with --server, want NEW (the rules file to compare with the serving set); got %d arguments", len(c.rules))
	case !c.fromServer && len(c.rules) != 2:
		return usagef("want OLD NEW rules files (or --server ADDR NEW); got %d arguments", len(c.rules))
	case c.requests == "":
		return usagef("--requests FILE is required: a request stream or an access log")
	case c.maxChanges < 0:
		return usagef("--max-changes %d: want 0 or more", c.maxChanges)
	case c.scheme != "" && c.scheme != "http" && c.scheme != "https":
		return usagef("--scheme %q: accepted: http, https", c.scheme)
	}
	if err := c.run(ctx, stdout, stderr); err != nil {
		// Exit 1 means "too many changes" alone; anything that kept the
		// comparison from being made is 2, so CI can tell them apart
		// (run finds a usage error or errFailed inside the wrapping).
		return inputError{err}
	}
	return nil
}

// openLog opens --requests and finds its format: named, or detected from
// the first lines, which the returned reader still holds.
func (c *diffCommand) openLog() (r *bufio.Reader, name string, size int64, format accesslog.Format, closer func(), err error) {
	if c.logFormat != "auto" {
		if format, err = accesslog.ParseFormat(c.logFormat); err != nil {
			return nil, "", 0, 0, nil, usagef("--log-format: %v", err)
		}
	}
	in := io.Reader(os.Stdin)
	name, closer = "stdin", func() {}
	if c.requests != "-" {
		f, err := os.Open(c.requests)
		if err != nil {
			return nil, "", 0, 0, nil, err
		}
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
		in, name, closer = f, c.requests, func() { f.Close() }
	}
	r = bufio.NewReaderSize(in, logHead)
	if c.logFormat == "auto" {
		head, err := r.Peek(logHead)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			closer()
			return nil, "", 0, 0, nil, err
		}
		lines := bytes.Split(head, []byte{'\n'})
		if len(head) == logHead && len(lines) > 1 {
			lines = lines[:len(lines)-1] // a line cut by the peek
		}
		if format, err = accesslog.Detect(lines); err != nil {
			closer()
			return nil, "", 0, 0, nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if !format.HasHost() && c.host == "" {
		closer()
		return nil, "", 0, 0, nil, usagef("a %s log names no host: give the site's --host (and --scheme)", format)
	}
	return r, name, size, format, closer, nil
}

// indexes builds OLD (a file or the serving set) and NEW.
func (c *diffCommand) indexes(ctx context.Context, stderr io.Writer) (old, nw *decision.Index, oldName, newName string, err error) {
	if c.fromServer {
		old, oldName, err = c.opts.serverIndex(ctx, &c.admin)
	} else {
		oldName = c.rules[0]
		old, err = c.opts.fileIndex(oldName, stderr)
	}
	if err != nil {
		return nil, nil, "", "", err
	}
	newName = c.rules[len(c.rules)-1]
	nw, err = c.opts.fileIndex(newName, stderr)
	return old, nw, oldName, newName, err
}

func (c *diffCommand) run(ctx context.Context, stdout, stderr io.Writer) error {
	clock, err := c.opts.clock()
	if err != nil {
		return err
	}
	in, name, size, format, closeLog, err := c.openLog()
	if err != nil {
		return err
	}
	defer closeLog()
	old, nw, oldName, newName, err := c.indexes(ctx, stderr)
	if err != nil {
		return err
	}

	d := &diffRun{old: old, new: nw, parser: accesslog.Parser{Format: format, Host: c.host, Scheme: c.scheme}, now: clock(),
		print: func(b []byte, ch *change) []byte {
			return fmt.Appendf(b, "%s:%d: %s\n  %s: %s → %s\n", name, ch.line, requestText(ch.req), kindWords[ch.kind], answerText(ch.before), answerText(ch.after))
		}}
	if c.asJSON {
		d.print = func(b []byte, ch *change) []byte {
			return appendJSON(b, jsonChange{File: name, Line: ch.line, Kind: kindJSON[ch.kind],
				Request: rulegen.LineOf(ch.req),
				Before:  toJSONAnswer(ch.before), After: toJSONAnswer(ch.after)})
		}
	}
	out := bufio.NewWriterSize(stdout, 64<<10)
	start := time.Now()
	var progress func(*diffTotals)
	if isTerminal(stderr) {
		progress = func(t *diffTotals) {
			pct := ""
			if size > 0 {
				pct = fmt.Sprintf(" (%d%%)", t.bytes*100/size)
			}
			fmt.Fprintf(stderr, "\r\033[K%d lines%s, %d changed, %.0f lines/s", t.lines, pct, t.changed(), float64(t.lines)/time.Since(start).Seconds())
		}
	}
	totals, err := d.run(ctx, in, out, progress)
	if progress != nil {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	elapsed := time.Since(start)

	for _, b := range totals.firstBad {
		fmt.Fprintf(stderr, "%s:%d: %v\n", name, b.line, b.err)
	}
	if more := totals.bad - len(totals.firstBad); more > 0 {
		fmt.Fprintf(stderr, "%s: and %s\n", name, plural(more, "more bad line"))
	}
	if totals.requests == 0 {
		return fmt.Errorf("%s: no request could be read in the %s format (%s, %s); name another with --log-format", name, format, plural(totals.lines, "line"), plural(totals.bad, "bad line"))
	}
	changed := totals.changed()
	exceeds := changed > c.maxChanges
	if c.asJSON {
		var s jsonSummary
		s.Summary.File, s.Summary.Format = name, format.String()
		s.Summary.Lines, s.Summary.Requests, s.Summary.BadLines, s.Summary.Changed = totals.lines, totals.requests, totals.bad, changed
		s.Summary.Kinds = map[string]int{}
		for k, n := range totals.kinds {
			s.Summary.Kinds[kindJSON[k]] = n
		}
		s.Summary.Exceeds, s.Summary.MaxChanges = exceeds, c.maxChanges
		out.Write(appendJSON(nil, s))
	} else {
		fmt.Fprintf(out, "%s (%s log): %s decided against %s and %s, %s\n", name, format, plural(totals.requests, "request"), oldName, newName, plural(totals.bad, "bad line"))
		fmt.Fprintf(out, "%s changed", plural(changed, "answer"))
		sep := ": "
		for k, n := range totals.kinds {
			if n > 0 {
				fmt.Fprintf(out, "%s%d %s", sep, n, kindWords[k])
				sep = ", "
			}
		}
		fmt.Fprintln(out)
	}
	if err := out.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s in %v (%.0f lines/s)\n", plural(totals.lines, "line"), threeDigits(elapsed), float64(totals.lines)/elapsed.Seconds())
	if exceeds {
		fmt.Fprintf(stderr, "%s changed, more than --max-changes %d\n", plural(changed, "answer"), c.maxChanges)
		return errFailed
	}
	return nil
}
