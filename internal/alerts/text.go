package alerts

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// CleanText makes untrusted text (an audit record's pod name, a command line
// seen by the sensor, a client certificate's CN) fit an alert field that
// Validate accepts: valid UTF-8 (each invalid byte becomes U+FFFD), no
// control characters (a log-injection and terminal-escape vector: each
// becomes '?', tab is kept) and at most max bytes. Text that had to be cut
// ends in "..." (within max) so a reader knows it is not whole; the cut falls
// on a rune boundary. Text that is already clean is returned as is, without
// copying, which is the common case on the hot paths that call it.
//
// Senders share it so that an alert from the sensor and one from the audit
// receiver clean the same bytes the same way.
func CleanText(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if len(s) <= max && utf8.ValidString(s) && !hasControl(s) {
		return s
	}
	const ellipsis = "..."
	var b strings.Builder
	b.Grow(min(len(s), max))
	keep := 0 // length of the prefix that leaves room for the ellipsis
	for _, r := range s {
		if unicode.IsControl(r) && r != '\t' {
			r = '?'
		}
		n := utf8.RuneLen(r)
		if b.Len()+n > max {
			if max < len(ellipsis) {
				return b.String()
			}
			return b.String()[:keep] + ellipsis
		}
		b.WriteRune(r)
		if b.Len() <= max-len(ellipsis) {
			keep = b.Len()
		}
	}
	return b.String()
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) && r != '\t' {
			return true
		}
	}
	return false
}
