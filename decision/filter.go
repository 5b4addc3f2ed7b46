package decision

import "hash/maphash"

// overlayFilter says which ids and slot keys the overlay may hold: one bit
// per hash, set for every row a change writes (its id, and its slot key
// when it holds a rule). Bits are never cleared; a deleted or replaced
// row's stay until a new base starts a new overlay, and a false "maybe"
// costs only the memdb lookup every decision paid before. With some rows
// changed, a decision otherwise asked memdb for its slot and for each base
// rule it found, at every level of the path, and that doubled its cost;
// the filter answers almost all of those without memdb.
//
// A change copies the serving filter before its first write (64 KiB), so
// the serving Index's filter is never modified, as its memdb snapshot is
// not.
type overlayFilter struct {
	words [filterWords]uint64
}

// filterWords × 64 bits: 524,288, for at most FoldAt rows of two keys
// each, so a key that is not there is taken for one that is about one
// time in sixteen.
const filterWords = 1 << 13

func (f *overlayFilter) bit(h uint64) (int, uint64) {
	return int(h>>6) & (filterWords - 1), 1 << (h & 63)
}

func (f *overlayFilter) add(seed maphash.Seed, key string) {
	w, b := f.bit(maphash.String(seed, key))
	f.words[w] |= b
}

// mayHold is false when no row of the overlay has key; a nil filter holds
// nothing.
func (f *overlayFilter) mayHold(seed maphash.Seed, key string) bool {
	return f != nil && f.holds(maphash.String(seed, key))
}

func (f *overlayFilter) mayHoldBytes(seed maphash.Seed, key []byte) bool {
	return f != nil && f.holds(maphash.Bytes(seed, key))
}

func (f *overlayFilter) holds(h uint64) bool {
	w, b := f.bit(h)
	return f.words[w]&b != 0
}

// mark records key in the change's filter, copying the serving one first.
func (c *Change) mark(key string) {
	if !c.ownFilter {
		f := new(overlayFilter)
		if c.ix.filter != nil {
			*f = *c.ix.filter
		}
		c.ix.filter, c.ownFilter = f, true
	}
	c.ix.filter.add(c.ix.base.seed, key)
}
