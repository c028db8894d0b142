package inventory

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func TestReadAll(t *testing.T) {
	in := func(declared int64, data string) *Input {
		return &Input{Path: "a/f", Info: FileInfo{Size: declared}, Reader: strings.NewReader(data)}
	}
	for _, tt := range []struct {
		name     string
		in       *Input
		want     string
		tooLarge bool
	}{
		{"at the limit", in(4, "abcd"), "abcd", false},
		{"size unknown", in(0, "abcd"), "abcd", false},
		{"declared too large", in(5, ""), "", true},
		{"streams more than declared", in(1, "abcde"), "", true},
		{"empty", in(0, ""), "", false},
	} {
		got, err := ReadAll(tt.in, 4)
		if tt.tooLarge {
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "a/f") {
				t.Errorf("%s: err = %v, want ErrTooLarge naming the file", tt.name, err)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	boom := errors.New("boom")
	_, err := ReadAll(&Input{Path: "a/f", Reader: iotest.ErrReader(boom)}, 4)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "read a/f") {
		t.Errorf("read error: %v", err)
	}
}

func TestTrimBOM(t *testing.T) {
	for in, want := range map[string]string{
		"\xef\xbb\xbf{}":           "{}",
		"{}":                       "{}",
		"\xef\xbb{}":               "\xef\xbb{}",
		"\xef\xbb\xbf\xef\xbb\xbf": "\xef\xbb\xbf",
		"":                         "",
	} {
		if got := string(TrimBOM([]byte(in))); got != want {
			t.Errorf("TrimBOM(%q) = %q, want %q", in, got, want)
		}
	}
}

// lines reads all of data with a LineReader of bound max.
func lines(t testing.TB, data string, max int) (got []string, lr *LineReader, err error) {
	t.Helper()
	lr = NewLineReader(strings.NewReader(data), max)
	for {
		line, err := lr.Next()
		if err != nil {
			return got, lr, err
		}
		got = append(got, string(line))
	}
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("x", 5000) // longer than the 4 KiB buffer
	for _, tt := range []struct {
		name, in      string
		max           int
		want          []string
		overlong, at  int
		lastLineCount int
	}{
		{"plain", "a\nb\n", 100, []string{"a", "b"}, 0, 0, 2},
		{"no final newline", "a\nb", 100, []string{"a", "b"}, 0, 0, 2},
		{"crlf, one cr only", "a\r\nb\r\r\n\r\n", 100, []string{"a", "b\r", ""}, 0, 0, 3},
		{"empty", "", 100, nil, 0, 0, 0},
		{"long line kept", "a\n" + long + "\nb\n", 6000, []string{"a", long, "b"}, 0, 0, 3},
		{"overlong skipped", "a\n" + long + "\nb\n" + long + "\n", 4500, []string{"a", "b"}, 2, 2, 4},
		{"overlong at end", "a\n" + long, 4500, []string{"a"}, 1, 2, 2},
		{"long line at end", "a\n" + long, 6000, []string{"a", long}, 0, 0, 2},
	} {
		got, lr, err := lines(t, tt.in, tt.max)
		if err != io.EOF {
			t.Errorf("%s: err = %v, want io.EOF", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: lines (-want +got):\n%s", tt.name, diff)
		}
		if n, first := lr.Overlong(); n != tt.overlong || first != tt.at || lr.Line() != tt.lastLineCount {
			t.Errorf("%s: overlong %d (first at %d), line %d; want %d (%d), %d", tt.name, n, first, lr.Line(), tt.overlong, tt.at, tt.lastLineCount)
		}
	}
	boom := errors.New("boom")
	lr := NewLineReader(io.MultiReader(strings.NewReader("a\nb"), iotest.ErrReader(boom)), 100)
	if line, err := lr.Next(); err != nil || string(line) != "a" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if _, err := lr.Next(); !errors.Is(err, boom) {
		t.Errorf("err = %v, want the read error, not a partial line", err)
	}
}

func FuzzLineReader(f *testing.F) {
	f.Add([]byte("P:a\nV:1\r\n\nP:b"), 8)
	f.Add(bytes.Repeat([]byte("x"), 5000), 4500)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		max = 16 + (max%10000+10000)%10000
		got, lr, err := lines(t, string(data), max)
		if err != io.EOF {
			t.Fatalf("err = %v", err)
		}
		n, _ := lr.Overlong()
		if len(got)+n != lr.Line() {
			t.Fatalf("%d lines and %d skipped, line count %d", len(got), n, lr.Line())
		}
		want := bytes.Count(data, []byte{'\n'})
		if len(data) > 0 && data[len(data)-1] != '\n' {
			want++
		}
		if lr.Line() != want {
			t.Fatalf("line count %d, the input has %d lines", lr.Line(), want)
		}
		for _, l := range got {
			if len(l) > max || strings.Contains(l, "\n") {
				t.Fatalf("line of %d bytes (bound %d): %q", len(l), max, l)
			}
		}
	})
}

func TestProblems(t *testing.T) {
	var p Problems
	if err := p.Err("f"); err != nil {
		t.Errorf("no problems: %v", err)
	}
	for i := range 7 {
		p.Add("line %d: bad", i+1)
	}
	want := "parse f: line 1: bad; line 2: bad; line 3: bad; line 4: bad; line 5: bad (and 2 more)"
	if err := p.Err("f"); err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/a": "usr/bin/a", "usr/bin/a": "usr/bin/a", "//a": "a", "a/..b": "a/..b",
		"": "", "/": "", "/.": "", "a/../b": "", "a//b": "", "a/": "", "a/./b": "", "..": "",
		"a\x00b": "", "a\nb": "", "a\x7f": "", "caf\xc3\xa9": "caf\xc3\xa9",
	} {
		got, ok := CleanPath(in)
		if got != want || ok != (want != "") {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestDedup(t *testing.T) {
	var d Dedup
	d.Add(Package{Name: "b", Version: "1", Dev: true, Indirect: true})
	d.Add(Package{Name: "a", Version: "2", Dev: true})
	d.Add(Package{Name: "a", Version: "10", Indirect: true})
	d.Add(Package{Name: "b", Version: "1", Dev: true})
	d.Add(Package{Name: "a", Version: "2", Dev: true, Indirect: true})
	want := []Package{
		{Name: "a", Version: "10", Indirect: true},
		{Name: "a", Version: "2", Dev: true},
		{Name: "b", Version: "1", Dev: true},
	}
	if diff := cmp.Diff(want, d.Sorted()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
