package intel

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustParse(t testing.TB, text, name string) *List {
	t.Helper()
	l, err := Parse(strings.NewReader(text), name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestParseFormats(t *testing.T) {
	tor, err := os.ReadFile("testdata/tor-exit-addresses.txt")
	if err != nil {
		t.Fatal(err)
	}
	csv, err := os.ReadFile("testdata/blocklist.csv")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, text string
		want       []string
		skipped    int
	}{
		{"plain", "# comment\n203.0.113.7\n\n198.51.100.0/24 ; trailing comment\nPool.Example.COM.\n2001:db8::/32\n::ffff:192.0.2.1\n",
			[]string{"203.0.113.7/32", "198.51.100.0/24", "pool.example.com", "2001:db8::/32", "192.0.2.1/32"}, 0},
		{"tor", string(tor), []string{"185.220.101.1/32", "185.220.101.2/32", "2.58.56.43/32"}, 0},
		{"csv", string(csv), []string{"192.0.2.9/32", "198.51.100.64/26", "bad.example.net"}, 1},
		{"masks host bits", "10.1.2.3/8\n", []string{"10.0.0.0/8"}, 0},
		{"junk lines", "not an ip!\n300.1.1.1\n1.2.3.4 5.6.7.8\n192.0.2.1\n-bad-.example\n",
			[]string{"192.0.2.1/32"}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := mustParse(t, tc.text, tc.name)
			var got []string
			for _, e := range l.Entries {
				if e.Domain != "" {
					got = append(got, e.Domain)
				} else {
					got = append(got, e.Prefix.String())
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			if l.Skipped != tc.skipped {
				t.Errorf("skipped %d, want %d: %v", l.Skipped, tc.skipped, l.Problems)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	if _, err := Parse(strings.NewReader("# only comments\n\n"), "empty.txt"); !errors.Is(err, ErrNoEntries) {
		t.Errorf("want ErrNoEntries, got %v", err)
	}
	long := strings.Repeat("a", MaxLineBytes+10)
	if _, err := Parse(strings.NewReader("192.0.2.1\n"+long+"\n"), "long.txt"); err == nil || !strings.Contains(err.Error(), "long.txt:2") {
		t.Errorf("want a line-length error naming long.txt:2, got %v", err)
	}
	l, _ := Parse(strings.NewReader(strings.Repeat("x\n", 100)+"192.0.2.1\n"), "many.txt")
	if l.Skipped != 100 || len(l.Problems) != maxProblems || !strings.HasPrefix(l.Problems[0], "many.txt:1:") {
		t.Errorf("problems not capped or not located: skipped=%d problems=%d first=%q", l.Skipped, len(l.Problems), l.Problems[0])
	}
}

// fixedResolver is a stand-in for DNS (no network here): it answers from a map.
type fixedResolver map[string][]string

func (r fixedResolver) LookupNetIP(ctx context.Context, _, host string) ([]netip.Addr, error) {
	v, ok := r[host]
	if !ok {
		return nil, fmt.Errorf("no such host %s", host)
	}
	var out []netip.Addr
	for _, s := range v {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

func TestLookup(t *testing.T) {
	a := mustParse(t, "10.0.0.0/8\n10.1.0.0/16\n192.0.2.1\n2001:db8::/32\n::/0\n", "a.txt")
	b := mustParse(t, "203.0.113.0/24\n10.2.3.4\npool.example.com\nnx.example.com\n0.0.0.0/0\n", "b.txt")
	b2 := mustParse(t, "0.0.0.0/1\n", "c.txt")
	res := fixedResolver{"pool.example.com": {"198.51.100.77", "2001:db9::1"}}
	s := Build(context.Background(), []*List{a, b2}, BuildOptions{Resolver: res})
	tests := []struct {
		addr string
		want Match
		ok   bool
	}{
		{"10.200.0.1", Match{"a.txt", "10.0.0.0/8"}, true}, // inside c.txt's 0.0.0.0/1: most specific names it
		{"10.1.2.3", Match{"a.txt", "10.1.0.0/16"}, true},
		{"10.2.0.0", Match{"a.txt", "10.0.0.0/8"}, true},
		{"9.255.255.255", Match{"c.txt", "0.0.0.0/1"}, true},
		{"192.0.2.1", Match{"a.txt", "192.0.2.1/32"}, true},
		{"::ffff:192.0.2.1", Match{"a.txt", "192.0.2.1/32"}, true},
		{"11.0.0.1", Match{"c.txt", "0.0.0.0/1"}, true},
		{"192.0.2.2", Match{}, false},
		{"128.0.0.0", Match{}, false},
		{"2001:db8:ffff::1", Match{"a.txt", "2001:db8::/32"}, true},
		{"fe80::1", Match{"a.txt", "::/0"}, true},
	}
	for _, tc := range tests {
		got, ok := s.Lookup(netip.MustParseAddr(tc.addr))
		if ok != tc.ok || got != tc.want {
			t.Errorf("Lookup(%s) = %v %v, want %v %v", tc.addr, got, ok, tc.want, tc.ok)
		}
	}
	s2 := Build(context.Background(), []*List{b}, BuildOptions{Resolver: res})
	if m, ok := s2.Lookup(netip.MustParseAddr("198.51.100.77")); !ok || m.Indicator != "pool.example.com" {
		t.Errorf("resolved domain: %v %v", m, ok)
	}
	if m, ok := s2.Lookup(netip.MustParseAddr("2001:db9::1")); !ok || m.Indicator != "pool.example.com" {
		t.Errorf("resolved domain v6: %v %v", m, ok)
	}
	if m, ok := s2.Lookup(netip.MustParseAddr("1.1.1.1")); !ok || m.Indicator != "0.0.0.0/0" {
		t.Errorf("0.0.0.0/0: %v %v", m, ok)
	}
	if len(s2.Problems) != 1 || !strings.Contains(s2.Problems[0], "nx.example.com") {
		t.Errorf("unresolvable domain not reported: %v", s2.Problems)
	}
	var nilSet *Set
	if _, ok := nilSet.Lookup(netip.MustParseAddr("1.1.1.1")); ok {
		t.Error("nil set matched")
	}
}

// The lookup agrees with a linear scan over random prefixes and addresses.
func TestLookupAgreesWithLinearScan(t *testing.T) {
	var text strings.Builder
	var prefixes []netip.Prefix
	x := uint32(2463534242)
	next := func() uint32 { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return x }
	for range 500 {
		v := next()
		bits := 8 + int(next()%25)
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), bits).Masked()
		prefixes = append(prefixes, p)
		fmt.Fprintln(&text, p)
	}
	s := Build(context.Background(), []*List{mustParse(t, text.String(), "r")}, BuildOptions{})
	for range 20000 {
		v := next()
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		want := false
		for _, p := range prefixes {
			if p.Contains(a) {
				want = true
				break
			}
		}
		if _, got := s.Lookup(a); got != want {
			t.Fatalf("Lookup(%s) = %v, linear scan says %v", a, got, want)
		}
	}
}

func TestDefaultListsParse(t *testing.T) {
	ls, err := DefaultLists()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range ls {
		n += len(l.Entries)
		if l.Skipped != 0 {
			t.Errorf("%s: %v", l.Name, l.Problems)
		}
	}
	if n < 20 {
		t.Errorf("only %d default entries", n)
	}
}

func TestLoaderKeepsPreviousSetOnBadFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ips.txt")
	os.WriteFile(p, []byte("192.0.2.0/24\n"), 0o600)
	l := NewLoader([]string{p}, false, BuildOptions{}, nil)
	if err := l.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, []byte("garbage only\n"), 0o600)
	if err := l.Refresh(context.Background()); err == nil {
		t.Fatal("bad file accepted")
	}
	if _, ok := l.Current().Lookup(netip.MustParseAddr("192.0.2.5")); !ok {
		t.Fatal("previous set was dropped after a bad refresh")
	}
}

func FuzzParseIntel(f *testing.F) {
	for _, p := range []string{"testdata/tor-exit-addresses.txt", "testdata/blocklist.csv", "defaults/mining-pools.txt"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("10.0.0.0/8\n::/0\nExitAddress\n,,,\n\xff\xfe\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse(strings.NewReader(string(data)), "fuzz")
		if l == nil {
			t.Fatal("nil list")
		}
		if err == nil && len(l.Entries) == 0 {
			t.Fatal("no error but no entries")
		}
		s := Build(context.Background(), []*List{l}, BuildOptions{})
		for _, e := range l.Entries {
			if e.Domain != "" {
				continue
			}
			if _, ok := s.Lookup(e.Prefix.Addr()); !ok {
				t.Fatalf("entry %s does not match its own address", e.Prefix)
			}
		}
	})
}

func BenchmarkLookup(b *testing.B) {
	// A list the size of a large public IP blocklist: 100k random /32../16 entries.
	var text strings.Builder
	x := uint32(88172645)
	next := func() uint32 { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return x }
	for range 100000 {
		v := next()
		bits := 16 + int(next()%17)
		fmt.Fprintln(&text, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), bits).Masked())
	}
	l, err := Parse(strings.NewReader(text.String()), "bench")
	if err != nil {
		b.Fatal(err)
	}
	s := Build(context.Background(), []*List{l}, BuildOptions{})
	addrs := make([]netip.Addr, 4096)
	for i := range addrs {
		v := next()
		addrs[i] = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	b.ReportAllocs()
	i, hits := 0, 0
	for b.Loop() {
		if _, ok := s.Lookup(addrs[i&4095]); ok {
			hits++
		}
		i++
	}
	b.ReportMetric(float64(s.Entries), "ranges")
}
