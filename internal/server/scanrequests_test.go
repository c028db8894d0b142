package server

import (
	"strings"
	"testing"
)

func TestParseScanRef(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	good := []struct{ in, host, repo, digest, tag string }{
		{"reg.example.com/shop/web@" + d, "reg.example.com", "shop/web", d, ""},
		{"127.0.0.1:5000/a:1.0", "127.0.0.1:5000", "a", "", "1.0"},
	}
	for _, g := range good {
		h, r, dg, tg, err := parseScanRef(g.in)
		if err != nil || h != g.host || r != g.repo || dg != g.digest || tg != g.tag {
			t.Errorf("%s: %q %q %q %q %v", g.in, h, r, dg, tg, err)
		}
	}
	for _, bad := range []string{"", "shop/web", "reg.example.com/shop/web", "reg.example.com/Shop@" + d, "reg.example.com/a@sha256:zz",
		"reg.example.com/a:" + strings.Repeat("t", 200), strings.Repeat("a/", 300) + "b:1", "reg.example.com/a/../b:1", "a b:1",
		"reg.example.com/a@sha256:" + strings.Repeat("a", 63), "reg.example.com/a:1\n"} {
		if _, _, _, _, err := parseScanRef(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzParseScanRef: any string is accepted only as a well-formed
// reference (host, repository, exactly one of digest and tag), never panics.
func FuzzParseScanRef(f *testing.F) {
	for _, s := range []string{"reg.example.com/shop/web@sha256:" + strings.Repeat("ab", 32), "127.0.0.1:5000/a:1.0", "a b", "@", ":", "x/y:z@sha256:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, repo, digest, tag, err := parseScanRef(s)
		if err != nil {
			return
		}
		if host == "" || !repositoryPattern.MatchString(repo) || (digest == "") == (tag == "") {
			t.Fatalf("%q → %q %q %q %q", s, host, repo, digest, tag)
		}
		if digest != "" && !digestPattern.MatchString(digest) || tag != "" && !tagPattern.MatchString(tag) {
			t.Fatalf("%q → digest %q tag %q", s, digest, tag)
		}
	})
}
