package console

import (
	"cmp"
	"net/http"
	"slices"
)

// topRules is how many of the most hit rules the usage page lists.
const topRules = 20

type usagePage struct {
	Top      []usageRow
	Hit      int // rules of the serving set hit since start
	Total    int
	Never    []string // the first rules never hit, in id order
	NeverAll int
	After    string // where the next page of never-hit rules starts
}

type usageRow struct {
	RuleHits
	PerMinute []uint32
}

// serveUsage lists the most hit rules with their last day per minute,
// and the rules never hit since start, a page at a time.
func (c *Console) serveUsage(w http.ResponseWriter, r *http.Request) {
	ix := c.index(w, r)
	if ix == nil {
		return
	}
	p := &usagePage{Total: ix.Len()}
	hit := map[string]bool{}
	var top []RuleHits
	c.b.EachHit(func(h RuleHits) bool {
		if _, ok := ix.Rule(h.RuleID); !ok || h.Hits == 0 {
			return true // a rule that left the set
		}
		hit[h.RuleID] = true
		top = append(top, h)
		return true
	})
	slices.SortFunc(top, func(a, b RuleHits) int {
		return cmp.Or(cmp.Compare(b.Hits, a.Hits), cmp.Compare(a.RuleID, b.RuleID))
	})
	now := c.opts.Now()
	for _, h := range top[:min(len(top), topRules)] {
		p.Top = append(p.Top, usageRow{h, c.b.PerMinute(h.RuleID, now)})
	}
	p.Hit, p.NeverAll = len(hit), ix.Len()-len(hit)
	for id := range ix.IDs(r.URL.Query().Get("after")) {
		if hit[id] {
			continue
		}
		if len(p.Never) == pageSize {
			p.After = p.Never[pageSize-1]
			break
		}
		p.Never = append(p.Never, id)
	}
	c.render(w, r, http.StatusOK, "usage", "Usage", p)
}
