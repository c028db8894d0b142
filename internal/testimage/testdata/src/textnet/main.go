// Command textnet is a test-image program: it calls functions of old
// golang.org/x/text and golang.org/x/net versions that have known
// vulnerabilities (GO-2022-1059 language.Parse, GO-2023-1988 html parsing,
// GO-2023-2102 HTTP/2 server), so a binary scanner has something real to find.
package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/http2"
	"golang.org/x/text/language"
)

func main() {
	tag, err := language.Parse(strings.Join(os.Args[1:], "-") + "en-US")
	fmt.Println(tag, err)
	doc, err := html.Parse(strings.NewReader("<p>hello</p>"))
	fmt.Println(doc != nil, err)
	srv := &http.Server{Addr: "127.0.0.1:0"}
	fmt.Println(http2.ConfigureServer(srv, &http2.Server{}))
}
