// Command vulnapp is a test fixture for Bulwark's Go binary extractor. It
// links old, vulnerable module versions on purpose; it is never run.
package main

import (
	"fmt"
	"os"

	"golang.org/x/net/html"
	"golang.org/x/text/language"
	"rsc.io/quote"
)

func main() {
	tags, _, _ := language.ParseAcceptLanguage("en-US,fr;q=0.8")
	doc, err := html.Parse(os.Stdin)
	fmt.Println(tags, doc, err, quote.Hello())
}
