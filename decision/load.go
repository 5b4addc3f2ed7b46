package decision

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"slices"
	"unsafe"
)

// chunkBytes is how much of a JSON Lines file a load decodes at a time:
// the file streams through a buffer of this size instead of being held
// whole (a million rules are 100 MB of text, a base half of that).
const chunkBytes = 4 << 20

// replaceJSONL is ReplaceFrom for a JSON Lines file: it is decoded into a
// new base as it is read (decodeJSONL), never held whole, and the base
// replaces the serving set (replaceBase). On success the Change holds mu
// until Commit or Abort.
func (s *Store) replaceJSONL(file string, r io.Reader, size int64) (*Change, error) {
	bb, warns, err := s.decodeJSONL(file, r, size)
	if err != nil {
		return nil, err
	}
	return s.replaceBase(file, bb, warns)
}

// replaceJSON is ReplaceFile for a JSON document: its rule objects are
// decoded straight into a new base (decodeJSON), which replaces the
// serving set (replaceBase).
func (s *Store) replaceJSON(file string, data []byte) (*Change, error) {
	bb, warns, err := s.decodeJSON(file, data)
	if err != nil {
		return nil, err
	}
	return s.replaceBase(file, bb, warns)
}

// replaceBase prepares serving the rules of bb, a new base decoded from
// file with these warnings. With no set serving, or a set that differs
// from it in more than FoldAt rules, the new base serves. Otherwise it is
// only compared with the serving set, and the rules that differ are
// changed in place (replaceInPlace): a reload that changed ten rules
// writes ten. Either way the file's rules are never held as Rules: a full
// replace at a million rules holds the serving base and the new one, not
// a million Rules too. On success the Change holds mu until Commit or
// Abort.
func (s *Store) replaceBase(file string, bb *baseBuilder, warns []Problem) (*Change, error) {
	refused := func(err error) error { return withWarnings(locate(err, file), warns) }
	b, err := finishTables(bb, nil, s.loadWorkers())
	if err != nil {
		return nil, refused(err)
	}
	s.mu.Lock()
	cur := s.cur.Load()
	if cur != nil {
		c, ok, err := s.replaceInPlace(cur, len(b.rules), func(i int, r *Rule) { *r = b.rule(uint32(i)) })
		if err != nil {
			return nil, refused(err) // replaceInPlace released mu
		}
		if ok {
			c.addWarnings(warns)
			c.warns = locateProblems(c.warns, file)
			return c, nil
		}
	}
	c, err := s.serveBase(b, bb.caches)
	if err != nil {
		s.mu.Unlock()
		return nil, refused(err)
	}
	c.ix.warnings = append(warns, locateProblems(c.ix.warnings, file)...)
	c.warns = c.ix.warnings
	if cur != nil {
		c.Deletes = dropped(cur, len(b.rules), func(i int) string { return b.str(&b.rules[i], sID) })
	}
	return c, nil
}

// decodeJSONL reads a JSON Lines file from r, of about size bytes (0 when
// unknown), a chunk at a time; each chunk's lines are decoded, checked
// and compiled straight into builders, a piece of the chunk per core,
// which are then appended to one. It returns that builder and the
// warnings, with file and line; errors are a *RulesError of every problem.
func (s *Store) decodeJSONL(file string, r io.Reader, size int64) (*baseBuilder, []Problem, error) {
	workers := s.loadWorkers()
	out := newBaseBuilder(newCacheTable(s.opts), 0, 0)
	bufSize := int64(chunkBytes)
	if size > 0 && size < bufSize {
		bufSize = size + 1 // the whole file, and room to see its end
	}
	chunks := &lineChunks{r: r, bufs: [2][]byte{make([]byte, bufSize)}, file: file}
	next, stop := chunks.next, func() {}
	if workers > 1 && s.cur.Load() == nil {
		// A first load has the cores to itself: the file is read and
		// hashed while the last chunk is decoded. A reload reads in
		// turn, to keep to loadWorkers' count and leave the decisions
		// their core.
		next, stop = chunks.readAhead()
	}
	defer stop()
	var errs, warns []Problem
	lines := 0
	// A builder per core, used for every chunk: join copies out what
	// they hold.
	parts := make([]*baseBuilder, workers)
	for {
		got := next()
		chunk, err := got.data, got.err
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		n := 1
		if len(chunk) > splitBytes/4 {
			n = workers
		}
		pieces := splitLines(chunk, n)
		before := linesBefore(pieces)
		if lines+before[len(pieces)] > MaxRules {
			// Lines, not rules: blank and comment lines count too, a
			// bound close enough to refuse an absurd file early.
			return nil, nil, tooMany(lines + before[len(pieces)])
		}
		found := make([][]Problem, len(pieces))
		inPieces(len(pieces), func(k int) {
			bb := parts[k]
			if bb == nil {
				bb = newBaseBuilder(newCacheTable(s.opts), before[k+1]-before[k], len(pieces[k])/4)
				parts[k] = bb
			}
			bb.reset()
			for r, ps := range eachLine(pieces[k], lines+before[k]) {
				found[k] = bb.addDecoded(r, ps, found[k])
			}
		})
		errs, warns = splitProblems(file, slices.Concat(found...), errs, warns)
		out.reserve(parts[:len(pieces)], got.through, size)
		out.join(parts[:len(pieces)])
		lines += before[len(pieces)]
	}
	if len(errs) > 0 {
		return nil, nil, &RulesError{Problems: errs, Warnings: warns}
	}
	return out, warns, nil
}

// decodeJSON decodes the rule objects of a JSON document (jsonRuleSpans)
// straight into a base builder, a share of them per core as parseJSON
// does. It returns the builder and the warnings, with file and line;
// errors are a *RulesError of every problem.
func (s *Store) decodeJSON(file string, data []byte) (*baseBuilder, []Problem, error) {
	spans, problems := jsonRuleSpans(data)
	if len(problems) > 0 {
		return nil, nil, &RulesError{Problems: locateProblems(problems, file)}
	}
	if len(spans) > MaxRules {
		return nil, nil, tooMany(len(spans))
	}
	pieces := 1
	if len(data) > splitBytes {
		pieces = s.loadWorkers()
	}
	return s.decodeInPieces(file, len(spans), pieces, len(data)/4, func(i int, r *Rule, f *ruleFields) []Problem {
		sp := spans[i]
		return decodeRule(data[sp.start:sp.end], sp.line, r, f)
	})
}

// decodeInPieces decodes n rules, the i-th by decode(i, r, f), on pieces
// goroutines, each straight into a builder of its own (about textBytes of
// strings in all), and joins the builders in order. It returns the joined
// builder and the warnings, with file; errors are a *RulesError of every
// problem. f is scratch space of the goroutine's own.
func (s *Store) decodeInPieces(file string, n, pieces, textBytes int, decode func(i int, r *Rule, f *ruleFields) []Problem) (*baseBuilder, []Problem, error) {
	parts := make([]*baseBuilder, pieces)
	found := make([][]Problem, pieces)
	inPieces(pieces, func(k int) {
		lo, hi := k*n/pieces, (k+1)*n/pieces
		bb := newBaseBuilder(newCacheTable(s.opts), hi-lo, textBytes/pieces)
		var f ruleFields
		var r Rule
		for i := lo; i < hi; i++ {
			r = Rule{}
			found[k] = bb.addDecoded(&r, decode(i, &r, &f), found[k])
		}
		parts[k] = bb
	})
	errs, warns := splitProblems(file, slices.Concat(found...), nil, nil)
	if len(errs) > 0 {
		return nil, nil, &RulesError{Problems: errs, Warnings: warns}
	}
	out := newBaseBuilder(newCacheTable(s.opts), 0, 0)
	out.reserve(parts, 0, 0)
	out.join(parts)
	return out, warns, nil
}

// addDecoded adds r, decoded with the problems ps, to bb unless one of them
// is an error, compiling it; it returns found with the problems of r.
func (bb *baseBuilder) addDecoded(r *Rule, ps []Problem, found []Problem) []Problem {
	found = append(found, ps...)
	if hasError(ps) {
		return found
	}
	rt, p := compile(r, bb.caches)
	if p != nil {
		return append(found, *p)
	}
	bb.add(r, &rt)
	return found
}

// splitProblems appends the problems of file to errs or warns, by severity.
func splitProblems(file string, ps, errs, warns []Problem) ([]Problem, []Problem) {
	for _, p := range ps {
		p.File = file
		if p.Severity == SeverityWarning {
			warns = append(warns, p)
		} else {
			errs = append(errs, p)
		}
	}
	return errs, warns
}

// loadWorkers is how many goroutines decode and check a load: one per core
// for the first load, which nothing waits beside, and one fewer while a
// set is serving, so a reload of a million rules leaves a core to the
// decisions it runs beside (README "Reloading the rules file").
func (s *Store) loadWorkers() int {
	n := runtime.GOMAXPROCS(0)
	if s.cur.Load() != nil {
		n = max(1, n-1)
	}
	return n
}

// lineChunks cuts a stream into chunks that end at a line end (the last
// may not), each at most the buffer's size unless one line is longer. A
// chunk is valid until the next call; read ahead, it fills two buffers in
// turn, so a chunk stays valid until the call after the next, while the
// next one is read.
type lineChunks struct {
	r         io.Reader
	bufs      [2][]byte // bufs[1] only when read ahead
	cur       int       // bufs[cur] holds the last chunk
	ahead     bool      // readAhead: alternate between the buffers
	file      string
	rest, end int   // bufs[cur][rest:end] is the start of a line the last chunk cut
	read      int64 // bytes read so far, for MaxRulesFileBytes
	eof       bool
}

// chunk is what lineChunks.next returns: data, which ends through bytes
// into the stream, or err (io.EOF after the last).
type chunk struct {
	data    []byte
	through int64
	err     error
}

func (c *lineChunks) next() chunk {
	prev := c.bufs[c.cur]
	if c.ahead {
		c.cur ^= 1
	}
	if len(c.bufs[c.cur]) < len(prev) {
		// The other buffer's first use, or prev grew for a long line.
		c.bufs[c.cur] = make([]byte, len(prev))
	}
	buf := c.bufs[c.cur]
	keep := copy(buf, prev[c.rest:c.end])
	c.rest, c.end = 0, keep
	for !c.eof {
		if c.end == len(buf) {
			// One line fills the buffer: make room for the rest of it.
			buf = slices.Grow(buf, len(buf))[:2*len(buf)]
			c.bufs[c.cur] = buf
		}
		n, err := io.ReadFull(c.r, buf[c.end:])
		c.end += n
		c.read += int64(n)
		switch {
		case c.read > MaxRulesFileBytes:
			return chunk{err: &RulesError{Problems: []Problem{tooBig(c.file, c.read, MaxRulesFileBytes)}}}
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			c.eof = true
		case err != nil:
			return chunk{err: fmt.Errorf("read %s: %w", c.file, err)}
		}
		if nl := bytes.LastIndexByte(buf[keep:c.end], '\n'); nl >= 0 && !c.eof {
			c.rest = keep + nl + 1
			return chunk{data: buf[:c.rest], through: c.read - int64(c.end-c.rest)}
		}
		keep = c.end
	}
	if c.end == 0 {
		return chunk{err: io.EOF}
	}
	c.rest = c.end
	return chunk{data: buf[:c.end], through: c.read}
}

// readAhead calls next on a goroutine of its own, a chunk ahead of the
// caller: the stream is read (and hashed, when the caller's reader tees
// it into a hash, as the daemon's does) while the last chunk is decoded.
// Its chunk is handed over only when the caller asks for it, so the
// caller is done with the one before, whose buffer the goroutine then
// fills. stop ends the goroutine and waits for it: after stop, nothing
// reads the stream.
func (c *lineChunks) readAhead() (next func() chunk, stop func()) {
	c.ahead = true
	out, quit, done := make(chan chunk), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			ch := c.next()
			select {
			case out <- ch:
			case <-quit:
				return
			}
			if ch.err != nil {
				return
			}
		}
	}()
	return func() chunk { return <-out }, func() { close(quit); <-done }
}

// reserve makes room in bb, before parts are joined to it, for what the
// whole file will hold: read of its size bytes have been decoded into bb
// and parts, and their share foretells the rest, with a tenth to spare
// (ids and paths grow longer down a generated file). Without it, a
// million records and their text would be copied at every growth, each
// copy one long memmove that holds up the collector's stop-the-world and
// every decision with it.
func (bb *baseBuilder) reserve(parts []*baseBuilder, read, size int64) {
	records, text := len(bb.b.rules), len(bb.b.arena)
	for _, p := range parts {
		records += len(p.b.rules)
		text += len(p.b.arena)
	}
	if records <= cap(bb.b.rules) && text <= cap(bb.b.arena) {
		return
	}
	scale := 1.0
	if size > read && read > 0 {
		scale = 1.1 * float64(size) / float64(read)
	}
	grow := func(n, have int) int { return int(float64(n)*scale) + 64 - have }
	bb.b.rules = growGently(bb.b.rules, grow(records, len(bb.b.rules)))
	bb.b.arena = growGently(bb.b.arena, grow(text, len(bb.b.arena)))
}

// growGently returns s with room for n more elements, as slices.Grow
// does, but without one long stretch the scheduler cannot interrupt:
// growslice clears the new array's tail and copies the old elements each
// in one memmove, and into fresh pages a hundred megabytes take a quarter
// of a second. A collection that must stop this goroutine then waits, on
// the other core, and no decision runs on either (a 270 ms stall in a
// trace of a 1M reload). make clears a large pointer-free array in
// pieces, with preemption checks between them, and the copy goes a
// megabyte at a time. T must hold no pointers.
func growGently[T any](s []T, n int) []T {
	if n <= cap(s)-len(s) {
		return s
	}
	grown := make([]T, len(s), len(s)+n)
	var zero T
	step := max(1, (1<<20)/int(unsafe.Sizeof(zero)))
	for i := 0; i < len(s); i += step {
		copy(grown[i:len(s)], s[i:min(i+step, len(s))])
	}
	return grown
}

// join appends the parts' records to bb, in order: their spans, scopes,
// cache strings and extras are renumbered into bb's tables. Callers
// reserve first, so the appends do not copy what bb holds.
func (bb *baseBuilder) join(parts []*baseBuilder) {
	for _, p := range parts {
		pb := p.b
		arenaBase := uint32(len(bb.b.arena))
		bb.b.arena = append(bb.b.arena, pb.arena...)
		extBase := uint32(len(bb.b.exts)) - 1
		bb.b.exts = append(bb.b.exts, pb.exts[1:]...)
		scopes := make([]uint32, len(pb.scopes))
		for i, sc := range pb.scopes {
			scopes[i] = bb.scope(sc)
		}
		cacheIDs := make([]uint32, len(p.caches.list))
		for i, cc := range p.caches.list {
			cacheIDs[i], _ = bb.caches.get(cc.rule)
		}
		start := len(bb.b.rules)
		bb.b.rules = append(bb.b.rules, pb.rules...)
		for i := range bb.b.rules[start:] {
			c := &bb.b.rules[start+i]
			for s := range c.off {
				c.off[s] += arenaBase
			}
			c.scope, c.cache = scopes[c.scope], cacheIDs[c.cache]
			if c.ext != 0 {
				c.ext += extBase
			}
		}
	}
}

// reset empties bb for the next chunk, keeping its memory.
func (bb *baseBuilder) reset() {
	b := bb.b
	b.rules, b.arena = b.rules[:0], b.arena[:0]
	clear(b.exts[1:])
	b.exts = b.exts[:1]
	b.scopes = b.scopes[:0]
	clear(bb.scopeIdx)
	clear(bb.caches.index)
	clear(bb.caches.list)
	bb.caches.list = bb.caches.list[:0]
}
