package alerts

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestCleanText(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
	}{
		{"clean text kept", "web-7d9f\tapi", 64, "web-7d9f\tapi"},
		{"ANSI escape", "web\x1b[31mred", 64, "web?[31mred"},
		{"newline and NUL", "a\nb\x00c\r", 64, "a?b?c?"},
		{"C1 control", "a\u009bb", 64, "a?b"},
		{"invalid UTF-8", "/tmp/\xff\xfeevil", 64, "/tmp/\uFFFD\uFFFDevil"},
		{"truncated with marker", strings.Repeat("A", 20), 10, "AAAAAAA..."},
		{"exact fit not cut", strings.Repeat("A", 10), 10, strings.Repeat("A", 10)},
		{"dirty exact fit not cut", "AAAA\nAAAAA", 10, "AAAA?AAAAA"},
		// "é" is 2 bytes: 4 of them are 8 bytes, more than 9-3, so only 3 stay.
		{"cut on rune boundary", "éééééé", 9, "ééé..."},
		{"max below marker", "ééé", 2, "é"},
		{"max below marker, nothing fits", "éé", 1, ""},
		{"zero max", "abc", 0, ""},
		{"empty", "", 10, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CleanText(tc.in, tc.max); got != tc.want {
				t.Errorf("CleanText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
		})
	}
}

// Whatever comes in, the result passes the checks Validate applies to text
// fields.
func FuzzCleanText(f *testing.F) {
	f.Add("web\x1b[31m", 8)
	f.Add("/tmp/\xff\xfe\x00evil\n", 5)
	f.Add(strings.Repeat("é", 100), 7)
	f.Add("日本語テキスト", 4)
	f.Fuzz(func(t *testing.T, s string, max int) {
		max %= 1 << 12
		got := CleanText(s, max)
		if max < 0 {
			max = 0
		}
		if len(s) <= max && utf8.ValidString(s) && !hasControl(s) && got != s {
			t.Fatalf("clean %q changed to %q", s, got)
		}
		if len(got) > max {
			t.Fatalf("len %d > max %d", len(got), max)
		}
		if err := checkText("field", got, max); err != nil {
			t.Fatalf("CleanText(%q, %d) = %q: %v", s, max, got, err)
		}
		for _, r := range got {
			if unicode.IsControl(r) && r != '\t' {
				t.Fatalf("CleanText(%q) = %q: control rune %q", s, got, r)
			}
		}
	})
}

func BenchmarkCleanText(b *testing.B) {
	clean := "/usr/local/bin/python3 -m http.server 8080 --bind 0.0.0.0"
	dirty := strings.Repeat("/tmp/\xff\x1b[31mevil ", 1<<12)
	b.Run("clean", func(b *testing.B) {
		for b.Loop() {
			_ = CleanText(clean, 512)
		}
	})
	b.Run("dirty-64KiB", func(b *testing.B) {
		for b.Loop() {
			_ = CleanText(dirty, 512)
		}
	})
}
