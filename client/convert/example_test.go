package convert_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/redirectd/redirectd/client/convert"
)

func ExampleImportNetlify() {
	file := `# moved pages
/old-blog/*          /blog/:splat       301!
/pricing             /plans             302
/app/*               /index.html        200
`
	rules, skipped, err := convert.ImportNetlify("_redirects", strings.NewReader(file))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rules {
		fmt.Printf("%s: %s %s → %s (%v, %d)\n", r.ID, r.Match, r.Path, r.To, r.Intent, r.Status)
	}
	for _, p := range skipped {
		fmt.Println(p)
	}
	// Output:
	// netlify-L2: pattern /old-blog/* → /blog/:splat (permanent, 301)
	// netlify-L3: exact /pricing → /plans (temporary, 302)
	// _redirects:4: status 200 is a rewrite (the URL stays, other content is served), not a redirect: redirectd only decides redirects
}

func ExampleExportCSV() {
	rules, _, _ := convert.ImportCSV("list.csv", strings.NewReader(
		"example.com/docs,https://docs.example.com/,301,TRUE,TRUE,TRUE,TRUE\n"))
	for _, r := range rules {
		fmt.Printf("%s: host %s, %s %s\n", r.ID, r.Host, r.Match, r.Path)
	}
	// The two rules go back out as one row.
	if _, err := convert.ExportCSV(os.Stdout, rules); err != nil {
		fmt.Println(err)
	}
	// Output:
	// cf-L1: host example.com, prefix /docs
	// cf-L1-subdomains: host *.example.com, prefix /docs
	// example.com/docs,https://docs.example.com/,301,TRUE,TRUE,TRUE,TRUE
}
