package convert

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/redirectd/redirectd/decision"
)

// Cloudflare Bulk Redirects CSV columns, in the order Cloudflare's CSV
// format gives them; a header row naming them may reorder them.
const (
	colSource = iota
	colTarget
	colStatus
	colPreserveQuery
	colIncludeSubdomains
	colSubpath
	colPreserveSuffix
	numColumns
)

var columnNames = [numColumns]string{
	"source_url", "target_url", "status_code", "preserve_query_string",
	"include_subdomains", "subpath_matching", "preserve_path_suffix",
}

// cfRow is one URL redirect of a Bulk Redirect List.
type cfRow struct {
	host, path, target string
	status             int
	preserveQuery      bool
	includeSubdomains  bool
	subpath            bool
	preserveSuffix     bool
}

// ImportCSV converts a Cloudflare Bulk Redirects CSV file. Each record is
//
//	source_url,target_url[,status_code,preserve_query_string,include_subdomains,subpath_matching,preserve_path_suffix]
//
// as Cloudflare's dashboard imports it: status defaults to 301, booleans
// (TRUE/true/FALSE/false, empty = false) to false. A first row naming the
// columns ("source_url" or "Source URL", ...) is accepted and may put them
// in any order.
// The conversion, per Cloudflare's documented behaviour:
//
//   - source "example.com/path" or "https://example.com/path": host and
//     path; the scheme is not kept (redirectd rules match any scheme).
//   - without subpath_matching: an exact rule with trailing_slash strict
//     (Cloudflare compares the path as written).
//   - subpath_matching with preserve_path_suffix: a prefix rule (the rest of
//     the path is appended to the target); without preserve_path_suffix: a
//     pattern rule "path/*" whose target ignores the rest.
//   - preserve_query_string false (the default): query drop; true: keep.
//   - include_subdomains: a second rule for "*.host" (id suffix
//     "-subdomains"), since a redirectd host scope is either one host or
//     its subdomains.
//
// Reported, not converted: records with a bad field, sources with a port,
// a wildcard, a query or no host, targets that are not absolute http(s)
// URLs, statuses other than 301, 302, 303, 307, 308, duplicate sources and
// rules that redirect to themselves. err is a read error or a header row
// that cannot be understood (then no record can be read with certainty).
func ImportCSV(name string, r io.Reader) (rules []decision.Rule, skipped []decision.Problem, err error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cols := [numColumns]int{}
	for i := range cols {
		cols[i] = i
	}
	seen := map[string]int{} // source → line, for duplicates
	first := true
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var perr *csv.ParseError
			if !errors.As(err, &perr) {
				return nil, nil, fmt.Errorf("read %s: %w", name, err)
			}
			skipped = append(skipped, lineProblem(name, perr.StartLine, "%v (quote a field that holds a comma or a quote)", perr.Err))
			continue
		}
		line, _ := cr.FieldPos(0)
		if first {
			first = false
			rec[0] = strings.TrimPrefix(rec[0], "\ufeff")
			if columnName(rec[0]) == columnNames[colSource] {
				if cols, err = headerColumns(rec); err != nil {
					return nil, nil, fmt.Errorf("%s:%d: header: %w", name, line, err)
				}
				continue
			}
		}
		row, msg := parseCSVRecord(rec, cols)
		if msg != "" {
			skipped = append(skipped, lineProblem(name, line, "%s", msg))
			continue
		}
		key := row.host + row.path
		if prev, dup := seen[key]; dup {
			skipped = append(skipped, lineProblem(name, line, "source %s is already on line %d; Cloudflare allows one redirect per source URL", key, prev))
			continue
		}
		seen[key] = line
		converted, msg := csvRules(row)
		if msg != "" {
			skipped = append(skipped, lineProblem(name, line, "%s", msg))
			continue
		}
		id := "cf-L" + strconv.Itoa(line)
		for i := range converted {
			converted[i].ID = id
			if strings.HasPrefix(converted[i].Host, "*.") {
				converted[i].ID = id + "-subdomains"
			}
			converted[i].Line = line
		}
		rules = append(rules, converted...)
	}
	return rules, skipped, nil
}

// headerColumns maps the named columns to their positions.
func headerColumns(rec []string) ([numColumns]int, error) {
	var cols [numColumns]int
	for i := range cols {
		cols[i] = -1
	}
	for i, name := range rec {
		name = columnName(name)
		found := false
		for c, want := range columnNames {
			if name == want {
				if cols[c] >= 0 {
					return cols, fmt.Errorf("column %s named twice", name)
				}
				cols[c], found = i, true
			}
		}
		if !found {
			return cols, fmt.Errorf("unknown column %q; accepted: %s", name, strings.Join(columnNames[:], ", "))
		}
	}
	if cols[colTarget] < 0 {
		return cols, fmt.Errorf("no %s column", columnNames[colTarget])
	}
	return cols, nil
}

// columnName reads a header cell: "Source URL" and "source_url" alike.
func columnName(s string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), " ", "_")
}

// parseCSVRecord reads one record, or says what is wrong with it.
func parseCSVRecord(rec []string, cols [numColumns]int) (cfRow, string) {
	var row cfRow
	maxCol := 0
	for _, c := range cols {
		maxCol = max(maxCol, c)
	}
	if len(rec) > maxCol+1 {
		return row, fmt.Sprintf("%d fields; want at most %d: %s", len(rec), maxCol+1, strings.Join(columnNames[:], ","))
	}
	field := func(c int) string {
		if cols[c] < 0 || cols[c] >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[cols[c]])
	}
	source, target := field(colSource), field(colTarget)
	if source == "" || target == "" {
		return row, "source_url and target_url are required"
	}

	// The source has no scheme, or one that only narrows the match.
	hostPath := source
	if strings.Contains(source, "://") {
		_, host, path, ok := splitURL(source)
		if !ok {
			return row, fmt.Sprintf("source_url %q: want host/path or an http(s) URL", source)
		}
		hostPath = host + path
	}
	host, path, _ := strings.Cut(hostPath, "/")
	path = "/" + path
	if msg := checkHost(host); msg != "" {
		return row, fmt.Sprintf("source_url %q: %s", source, msg)
	}
	if strings.ContainsAny(path, "?#") {
		return row, fmt.Sprintf("source_url %q: a query or fragment cannot be matched; redirectd rules match host and path", source)
	}
	row.host, row.path = strings.ToLower(host), path

	if _, _, _, ok := splitURL(target); !ok {
		return row, fmt.Sprintf("target_url %q: want an absolute http:// or https:// URL", target)
	}
	row.target = target

	row.status = 301
	if s := field(colStatus); s != "" {
		n, err := strconv.Atoi(s)
		if _, ok := intentOf(n); err != nil || !ok {
			return row, fmt.Sprintf("status_code %q: accepted: 301, 302, 303, 307, 308", s)
		}
		row.status = n
	}
	for _, b := range []struct {
		col int
		dst *bool
	}{
		{colPreserveQuery, &row.preserveQuery},
		{colIncludeSubdomains, &row.includeSubdomains},
		{colSubpath, &row.subpath},
		{colPreserveSuffix, &row.preserveSuffix},
	} {
		switch v := field(b.col); strings.ToLower(v) {
		case "true":
			*b.dst = true
		case "false", "":
		default:
			return row, fmt.Sprintf("%s %q: want TRUE or FALSE (or empty)", columnNames[b.col], v)
		}
	}
	return row, ""
}

// csvRules is the rule (and its subdomain twin) for a row.
func csvRules(row cfRow) ([]decision.Rule, string) {
	intent, _ := intentOf(row.status)
	r := decision.Rule{Host: row.host, Path: row.path, To: row.target, Intent: intent, Status: row.status}
	if !row.preserveQuery {
		r.Query = decision.QueryDrop
	}
	switch {
	case !row.subpath:
		r.Match = decision.MatchExact
		r.TrailingSlash = decision.TrailingSlashStrict
	case strings.ContainsAny(row.path, ":*"):
		return nil, fmt.Sprintf("path %q: a literal : or * would read as a redirectd placeholder", row.path)
	case row.preserveSuffix:
		r.Match = decision.MatchPrefix
		r.Path = trimSlash(row.path)
	default:
		if strings.Contains(row.target, "/:") {
			return nil, fmt.Sprintf("target_url %q: a literal /: would read as a redirectd capture", row.target)
		}
		r.Match = decision.MatchPattern
		r.Path = strings.TrimSuffix(row.path, "/") + "/*"
	}
	if redirectsToItself(r.Host, r.Path, r.Match, r.To) {
		return nil, fmt.Sprintf("%s%s redirects to itself (%s): a client would loop; redirectd rules match http and https alike", row.host, row.path, row.target)
	}
	rules := []decision.Rule{r}
	if row.includeSubdomains {
		sub := r
		sub.Host = "*." + r.Host
		rules = append(rules, sub)
	}
	return rules, ""
}

// ExportCSV writes rules as a Cloudflare Bulk Redirects CSV, in the
// column order ImportCSV reads without a header (Cloudflare's CSV import
// takes no header row). A rule for "*.host" is written as
// include_subdomains on the row of its twin rule for host (same path,
// target and options); alone it has no Cloudflare form. An exact rule that
// ignores trailing slashes (the default) becomes two rows, "/a" and "/a/",
// because Cloudflare compares paths as written; a relative target is made
// absolute with https://host. Rules Cloudflare cannot express are left out
// and reported (errors); dropped details are warnings.
func ExportCSV(w io.Writer, rules []decision.Rule) (skipped []decision.Problem, err error) {
	type group struct {
		apex, sub *decision.Rule
		row       cfRow
	}
	var order []string
	groups := map[string]*group{}
	for i := range rules {
		r := &rules[i]
		row, ps, ok := csvRow(r)
		skipped = append(skipped, ps...)
		if !ok {
			continue
		}
		wild := strings.HasPrefix(r.Host, "*.")
		key := fmt.Sprintf("%+v|%v", row, r.TrailingSlash)
		g := groups[key]
		if g == nil {
			g = &group{row: row}
			groups[key] = g
			order = append(order, key)
		}
		slot := &g.apex
		if wild {
			slot = &g.sub
		}
		if *slot != nil {
			skipped = append(skipped, ruleError(r, "path", fmt.Sprintf("rule %q has the same source; Cloudflare allows one redirect per source URL", (*slot).ID)))
			continue
		}
		*slot = r
	}

	cw := csv.NewWriter(w)
	for _, key := range order {
		g := groups[key]
		if g.apex == nil {
			skipped = append(skipped, ruleError(g.sub, "host", fmt.Sprintf("include_subdomains always includes %s itself; a rule for %s alone has no Cloudflare form (add the same rule for %s)", g.row.host, g.sub.Host, g.row.host)))
			continue
		}
		row := g.row
		row.includeSubdomains = g.sub != nil
		paths := []string{row.path}
		if !row.subpath && g.apex.TrailingSlash == decision.TrailingSlashIgnore && row.path != "/" {
			if alt := strings.TrimSuffix(row.path, "/"); alt != row.path {
				paths = append(paths, alt)
			} else {
				paths = append(paths, row.path+"/")
			}
		}
		for _, p := range paths {
			rec := []string{
				row.host + p, row.target, strconv.Itoa(row.status),
				csvBool(row.preserveQuery), csvBool(row.includeSubdomains),
				csvBool(row.subpath), csvBool(row.preserveSuffix),
			}
			if err := cw.Write(rec); err != nil {
				return skipped, err
			}
		}
	}
	cw.Flush()
	return skipped, cw.Error()
}

// csvRow is r as a Cloudflare row (host without "*."), or ok false with
// the reason.
func csvRow(r *decision.Rule) (cfRow, []decision.Problem, bool) {
	fail := func(field, msg string) (cfRow, []decision.Problem, bool) {
		return cfRow{}, []decision.Problem{ruleError(r, field, msg)}, false
	}
	if field, msg, bad := unexpressible(r, "Cloudflare"); bad {
		return fail(field, msg)
	}
	switch {
	case len(r.Has) > 0:
		return fail("has", "Bulk Redirects match the URL only, never headers, cookies or query parameters")
	case len(r.Languages) > 0:
		return fail("languages", "Bulk Redirects match the URL only, never Accept-Language")
	}
	row := cfRow{host: strings.TrimPrefix(r.Host, "*."), path: r.Path, target: r.To, preserveQuery: r.Query == decision.QueryKeep}
	if r.Host == "" {
		return fail("host", "a Cloudflare source URL needs a host; this rule applies to any host")
	}
	switch r.Match {
	case decision.MatchExact:
	case decision.MatchPrefix:
		if r.TrailingSlash == decision.TrailingSlashStrict {
			return fail("trailing_slash", "Cloudflare subpath matching cannot be strict about a trailing slash")
		}
		row.subpath, row.preserveSuffix = true, true
	case decision.MatchPattern:
		base, ok := strings.CutSuffix(r.Path, "/*")
		if !ok || strings.ContainsAny(base, ":*") || strings.Contains(r.To, "/:") {
			return fail("path", "only a pattern \"/path/*\" whose target uses no capture has a Cloudflare form (subpath matching without preserve_path_suffix)")
		}
		row.path, row.subpath = trimSlash(base), true
	}
	if _, _, _, ok := splitURL(r.To); !ok {
		if strings.HasPrefix(r.Host, "*.") {
			return fail("to", "a relative target on a *.suffix rule goes to the subdomain asked for; a Cloudflare target is one URL")
		}
		row.target = "https://" + r.Host + r.To
	}
	status, warning := exportStatus(r, 307)
	if status == 303 {
		return fail("status", "Cloudflare Bulk Redirects accept 301, 302, 307 and 308, not 303 (see_other)")
	}
	row.status = status
	ps := droppedCaching(r, "Cloudflare")
	if warning != "" {
		ps = append(ps, ruleWarning(r, "status", warning))
	}
	if row.target != r.To && !strings.HasPrefix(r.Host, "*.") {
		ps = append(ps, ruleWarning(r, "to", fmt.Sprintf("relative target written as %s: Cloudflare targets are absolute URLs, so an http request is sent to https", row.target)))
	}
	return row, ps, true
}

func csvBool(b bool) string {
	if b {
		return "TRUE"
	}
	return "FALSE"
}
