package store

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzValidDigestAndRef feeds digests and references as a webhook or an
// agent would send them: no panic, and an accepted digest has the shape
// the database relies on.
func FuzzValidDigestAndRef(f *testing.F) {
	for _, s := range []string{
		"sha256:" + strings.Repeat("a", 64), "sha512:" + strings.Repeat("0", 128), "sha256:abc", "latest", "",
		"nginx:1.25", "registry.example.com:5000/team/app@sha256:" + strings.Repeat("b", 64), "UPPER/case", "a//b", "\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validDigest(s) == nil {
			alg, enc, ok := strings.Cut(s, ":")
			if !ok || alg == "" || enc == "" || len(s) > 256 || strings.ContainsAny(s, " \x00'\"") {
				t.Fatalf("accepted digest %q", s)
			}
		}
		if r, err := ParseImageRef(s); err == nil && (r.Registry == "" || r.Repository == "") {
			t.Fatalf("ParseImageRef(%q) = %+v without error", s, r)
		}
	})
}

// FuzzRebind: every "?" outside quotes becomes one numbered placeholder.
func FuzzRebind(f *testing.F) {
	for _, s := range []string{"a = ? AND b = ?", "'?' ?", `"?"?`, "'unterminated ?", "??", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		out := rebindDollar(q)
		if !strings.Contains(q, "?") && out != q {
			t.Fatalf("query without placeholders changed: %q -> %q", q, out)
		}
		if strings.Count(out, "$") < strings.Count(q, "$") {
			t.Fatalf("placeholders lost: %q -> %q", q, out)
		}
	})
}

// FuzzOpenSealed: arbitrary bytes in the credentials column never panic,
// and only a genuine seal (the seed, or its twin sealed by another fuzz
// worker with its own nonce) opens, to exactly what was sealed.
func FuzzOpenSealed(f *testing.F) {
	const secret = `{"password":"p"}`
	good, _ := seal(testKey, []byte(secret), []byte("x"))
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add(bytes.Repeat([]byte{1}, 29))
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := open(testKey, b, []byte("x"))
		if err == nil && string(pt) != secret {
			t.Fatalf("forged ciphertext %x opened to %q", b, pt)
		}
	})
}
