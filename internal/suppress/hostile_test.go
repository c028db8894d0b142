package suppress

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestIgnoreFileErrors(t *testing.T) {
	// A billion-laughs alias bomb in well-formed entries: each package
	// field aliases the previous one nine times.
	bomb := "  - {id: CVE-1, reason: r, package: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]}\n"
	for i := 'b'; i <= 'j'; i++ {
		bomb += fmt.Sprintf("  - {id: CVE-1, reason: r, package: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]}\n", i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	cases := map[string]string{
		"no reason":           "ignore:\n  - id: CVE-2023-1\n",
		"blank reason":        "ignore:\n  - id: CVE-2023-1\n    reason: '  '\n",
		"no id":               "ignore:\n  - reason: because\n",
		"misspelt key":        "ignore:\n  - id: CVE-2023-1\n    reason: r\n    expire: 2026-01-01\n",
		"unknown top key":     "ignore: []\nallow: []\n",
		"bad date":            "ignore:\n  - id: CVE-2023-1\n    reason: r\n    expires: next tuesday\n",
		"date as list":        "ignore:\n  - id: CVE-2023-1\n    reason: r\n    expires: [2026]\n",
		"entry not a mapping": "ignore:\n  - CVE-2023-1\n",
		"ignore not a list":   "ignore: CVE-2023-1\n",
		"id with spaces":      "ignore:\n  - id: CVE 2023 1\n    reason: r\n",
		"id with newline":     "ignore:\n  - id: \"CVE-1\\nCVE-2\"\n    reason: r\n",
		"id too long":         "ignore:\n  - id: " + strings.Repeat("A", 200) + "\n    reason: r\n",
		"tabs":                "ignore:\n\t- id: CVE-1\n",
		"alias bomb":          "ignore:\n" + bomb,
		"deep nesting":        "ignore: " + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "\n",
		"duplicate key":       "ignore:\n  - id: CVE-1\n    id: CVE-2\n    reason: r\n",
		"list: stray words":   "CVE-2023-1 because we said so\n",
		"list: bad expiry":    "CVE-2023-1 exp:soon\n",
		"list: control char":  "CVE-2023-1\x00\n",
		"list: long line":     strings.Repeat("A", 200) + "\n",
		"too large":           strings.Repeat("#", MaxIgnoreFileSize+1),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			f, err := ParseIgnoreFile("x.yaml", []byte(in))
			if err == nil {
				t.Fatalf("accepted: %+v", f)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), "x.yaml") {
				t.Errorf("error %v does not name the file", err)
			}
		})
	}
	// Empty files and comment-only files ignore nothing, without error.
	for _, in := range []string{"", "# nothing yet\n", "ignore:\n", "ignore: []\n", "\xef\xbb\xbfignore: []\n"} {
		f, err := ParseIgnoreFile("x", []byte(in))
		if err != nil || len(f.Entries) != 0 {
			t.Errorf("%q: %+v, %v", in, f, err)
		}
	}
}

func TestOpenVEXErrors(t *testing.T) {
	doc := func(stmt string) string {
		return `{"@context":"https://openvex.dev/ns/v0.2.0","@id":"x","author":"a","timestamp":"2026-01-01T00:00:00Z","version":1,"statements":[` + stmt + `]}`
	}
	cases := map[string]string{
		"not json":                 "not json",
		"truncated":                doc(`{"vulnerability":{"name":"CVE-1"}`)[:60],
		"not openvex":              `{"bomFormat":"CycloneDX"}`,
		"csaf":                     `{"document":{"category":"csaf_vex"}}`,
		"not_affected without why": doc(`{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:npm/a"}],"status":"not_affected"}`),
		"unknown status":           doc(`{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:npm/a"}],"status":"ignored"}`),
		"unknown justification":    doc(`{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:npm/a"}],"status":"not_affected","justification":"trust_me"}`),
		"no vulnerability":         doc(`{"products":[{"@id":"pkg:npm/a"}],"status":"fixed"}`),
		"vulnerability wrong type": doc(`{"vulnerability":42,"products":[],"status":"fixed"}`),
		"products wrong type":      doc(`{"vulnerability":{"name":"CVE-1"},"products":{"@id":"x"},"status":"fixed"}`),
		"bad timestamp":            `{"@context":"https://openvex.dev/ns","timestamp":"yesterday","statements":[]}`,
		"deep nesting":             `{"@context":"https://openvex.dev/ns","x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`,
		"statements not array":     `{"@context":"https://openvex.dev/ns","statements":"all"}`,
		"subcomponents wrong type": doc(`{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"x","subcomponents":7}],"status":"fixed"}`),
		"too large":                strings.Repeat(" ", MaxVEXSize+1),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			d, err := ParseOpenVEX("v.json", []byte(in))
			if err == nil {
				t.Fatalf("accepted: %+v", d)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "v.json") {
				t.Errorf("error %v: want ErrInvalid naming the file", err)
			}
		})
	}
	d, err := ParseOpenVEX("v.json", []byte(doc(`{"vulnerability":{"name":"CVE-1"},"status":"fixed"}`)))
	if err != nil || len(d.Warnings) != 1 {
		t.Errorf("statement without products: %+v, %v (want a warning)", d, err)
	}
	res := loadResult(t)
	n := len(res.Findings)
	if w := (&Set{VEX: []*VEXDocument{d}}).Apply(res, time.Time{}); len(w) != 1 || len(res.Findings) != n {
		t.Errorf("a statement without products suppressed something or was not reported: %q", w)
	}
}
