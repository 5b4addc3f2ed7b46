package decision

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Language negotiation for rules with languages (README "Language
// negotiation"): the request's Accept-Language (RFC 9110 section 12.5.4)
// chooses one of the rule's tags by RFC 4647 section 3.4 lookup.

// langRange is one element of Accept-Language.
type langRange struct {
	tag string // lower-case language range, or "*"
	q   int    // weight in thousandths (RFC 9110 section 12.4.2)
}

// parseAcceptLanguage reads the ranges of an Accept-Language value, in
// the order sent. Elements that are not a language range with an optional
// valid weight are left out, as a recipient may ignore what it cannot read.
func parseAcceptLanguage(v string) []langRange {
	var out []langRange
	for elem := range strings.SplitSeq(v, ",") {
		rng, params, _ := strings.Cut(elem, ";")
		rng = strings.Trim(rng, " \t")
		lr := langRange{tag: strings.ToLower(rng), q: 1000}
		if rng != "*" && !languageRange.MatchString(rng) {
			continue
		}
		if params != "" {
			q, ok := parseWeight(strings.Trim(params, " \t"))
			if !ok {
				continue
			}
			lr.q = q
		}
		out = append(out, lr)
	}
	return out
}

// languageRange is RFC 4647 section 2.1's language-range without "*".
var languageRange = regexp.MustCompile(`^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$`)

// parseWeight reads "q=" qvalue (RFC 9110 section 12.4.2): 0 to 1 with at
// most three decimals; the "q" is case-insensitive.
func parseWeight(p string) (int, bool) {
	if len(p) < 3 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=' {
		return 0, false
	}
	v := p[2:]
	whole, frac, dot := strings.Cut(v, ".")
	if (whole != "0" && whole != "1") || len(frac) > 3 || dot && strings.Trim(frac, "0123456789") != "" {
		return 0, false
	}
	n := 0
	if frac != "" {
		n, _ = strconv.Atoi(frac + strings.Repeat("0", 3-len(frac)))
	}
	q := 1000*int(whole[0]-'0') + n
	if q > 1000 {
		return 0, false
	}
	return q, true
}

// negotiate returns the tag of available (as written in the rule) that
// the Accept-Language value selects, or false when it selects none.
//
// Ranges are tried from the highest weight down, equal weights in the
// order sent. Each range is looked up as RFC 4647 section 3.4 says: a tag
// equal to it (case-insensitively), else to it with its last subtag cut
// (and a single-letter subtag left at the end cut too), down to its
// first subtag; "de-CH" finds "de", "de" does not find "de-CH". "*"
// selects the first tag of the rule that no other range names.
//
// q=0 refuses (RFC 9110 section 12.4.2): a tag is never selected when the
// most specific range that covers it ("de" covers "de" and "de-CH", "*"
// covers all) has weight 0, so "de-CH, de;q=0" does not choose "de".
func negotiate(header string, available []string) (string, bool) {
	ranges := parseAcceptLanguage(header)
	if len(ranges) == 0 {
		return "", false
	}
	// covering is the most specific range that covers tag, or nil.
	covering := func(tag string) *langRange {
		var best *langRange
		for i := range ranges {
			r := &ranges[i]
			if r.tag != "*" && r.tag != tag && !strings.HasPrefix(tag, r.tag+"-") {
				continue
			}
			if best == nil || best.tag == "*" || r.tag != "*" && len(r.tag) > len(best.tag) {
				best = r
			}
		}
		return best
	}
	acceptable := func(tag string) bool {
		c := covering(tag)
		return c == nil || c.q > 0
	}
	order := make([]int, 0, len(ranges))
	for i, r := range ranges {
		if r.q > 0 {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(ranges[b].q, ranges[a].q) })
	for _, i := range order {
		rng := ranges[i].tag
		if rng == "*" {
			for _, t := range available {
				if c := covering(strings.ToLower(t)); c != nil && c.tag == "*" {
					return t, true
				}
			}
			continue
		}
		for {
			for _, t := range available {
				// rng is lower case: t equal to it but for case is covered
				// by the same ranges, without lower-casing t per request.
				if strings.EqualFold(t, rng) && acceptable(rng) {
					return t, true
				}
			}
			cut := strings.LastIndexByte(rng, '-')
			if cut < 0 {
				break
			}
			rng = rng[:cut]
			if cut = strings.LastIndexByte(rng, '-'); cut >= 0 && cut == len(rng)-2 {
				rng = rng[:cut] // a singleton such as "x" is not left at the end
			}
		}
	}
	return "", false
}

// languageTag is the shape of an RFC 5646 section 2.1 language tag: a
// primary language subtag of 2 to 8 letters (or a private-use "x" tag),
// then subtags of 1 to 8 letters and digits; checkLanguages also refuses
// a single-character subtag at the end, which must introduce another.
var languageTag = regexp.MustCompile(`^(?:[A-Za-z]{2,8}|[xX])(?:-[A-Za-z0-9]{1,8})*$`)

// checkLanguages checks a rule's languages: well-formed tags, each once
// (checkVars checks that ":lang" is free for them in a pattern's path).
func checkLanguages(rp *ruleProblems) {
	const accepted = "accepted: language tags such as en, de, fr-CH, zh-Hant (RFC 5646)"
	for i, tag := range rp.r.Languages {
		last := tag[strings.LastIndexByte(tag, '-')+1:]
		switch {
		case tag == "*":
			rp.errorf("languages", "\"*\" is not a language; list the tags the rule serves (a request's * selects the first); %s", accepted)
		case !languageTag.MatchString(tag) || len(last) == 1:
			rp.errorf("languages", "%q is not a language tag; %s", tag, accepted)
		case slices.ContainsFunc(rp.r.Languages[:i], func(t string) bool { return strings.EqualFold(t, tag) }):
			rp.errorf("languages", "%q is listed twice (tags are compared case-insensitively)", tag)
		}
	}
}
