package alerts

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// BenchmarkValidate is the check every ingested alert passes (central's
// store runs it on each alert of a batch): a realistic sensor alert with
// evidence shaped like the sensor's events.
func BenchmarkValidate(b *testing.B) {
	a := validAlert()
	a.Evidence = json.RawMessage(`{"evt.type":"execve","proc.name":"sh","proc.cmdline":"sh -c id #4711","proc.pid":5711,"container.id":"c00000000003","proc.pname":"nginx","user.name":"root","fd.name":"/bin/sh"}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// checkTextTwoPass is checkText as first written (the whole value checked
// for UTF-8, then every rune for control characters): the reference the
// one-pass version must agree with.
func checkTextTwoPass(name, v string, limit int) error {
	if len(v) > limit {
		return invalid("%s longer than %d bytes", name, limit)
	}
	if !utf8.ValidString(v) {
		return invalid("%s is not UTF-8", name)
	}
	for _, r := range v {
		if unicode.IsControl(r) && r != '\t' {
			return invalid("%s contains a control character", name)
		}
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestCheckText(t *testing.T) {
	for _, v := range []string{"", "plain", "tab\there", "nl\nhere", "del\x7f", "c1\u0085", "nbsp\u00a0ok", "é ü 日本",
		"bad\xff", "ctl\x01 then bad \xff", "\u2028line sep", "fffd\ufffd", "surrogate\xed\xa0\x80", "overlong\xc0\xaf",
		"trunc\xe6\x97", strings.Repeat("a", 300)} {
		want, got := errText(checkTextTwoPass("f", v, 256)), errText(checkText("f", v, 256))
		if got != want {
			t.Errorf("%q: %s, want %s", v, got, want)
		}
	}
}

// FuzzCheckText holds checkText to the two-pass reference on any input.
func FuzzCheckText(f *testing.F) {
	for _, s := range []string{"", "plain", "tab\t", "\x00", "\x7f", "\u0085", "\xff", "\x01\xff", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		want, got := errText(checkTextTwoPass("f", v, 64)), errText(checkText("f", v, 64))
		if got != want {
			t.Fatalf("%q: %s, want %s", v, got, want)
		}
	})
}

// FuzzValidateEvidence holds the evidence check to its first form
// (strings.TrimSpace, a "{" prefix, json.Valid, or null).
func FuzzValidateEvidence(f *testing.F) {
	for _, s := range []string{"", "null", " null ", "{}", `{"a":1}`, "[]", " {\"a\":[1,2]} ", "{", "\u00a0{}", "nul", `{"a":"\xff"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, ev []byte) {
		a := validAlert()
		a.Evidence = json.RawMessage(ev)
		s := strings.TrimSpace(string(ev))
		wantOK := len(ev) == 0 || s == "null" || (strings.HasPrefix(s, "{") && json.Valid(ev))
		if len(ev) > MaxEvidenceBytes {
			wantOK = false
		}
		if err := a.Validate(); (err == nil) != wantOK {
			t.Fatalf("%q: Validate %v, want ok=%v", ev, err, wantOK)
		}
	})
}
