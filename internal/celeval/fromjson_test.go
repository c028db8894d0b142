package celeval

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fromJSONStd is what FromJSON did before its own parser: encoding/json's
// Decoder with UseNumber, integers then split from floats. The parser is
// held to it by TestFromJSONMatchesEncodingJSON and FuzzFromJSON.
func fromJSONStd(raw []byte) (any, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return stdNumbers(v), nil
}

func stdNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = stdNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = stdNumbers(e)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

var fromJSONSeeds = []string{
	`{"a":3,"b":2.5,"c":[1,{"d":-7}],"e":null,"f":true,"g":false,"h":""}`,
	`{"a":1,"a":2}`, `[]`, `{}`, `[[],{}]`, ` 12 `, `-0`, `0.0`, `1e3`, `1E+3`, `-1.5e-3`, `9223372036854775807`,
	`9223372036854775808`, `-9223372036854775809`, `1e400`, `-1e400`, `1e-400`, `01`, `[01]`, `1.`, `1.e3`, `-`, `+1`,
	`"\u00e9\n\t\"\\\/\b\f\r"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\ude00\ud83d"`, `"\uZZZZ"`,
	"\"\xff\xfe\"", "\"caf\xc3\xa9\"", "\"a\x01\"", `"\x"`, `"abc`, `{"a"`, `{"a":}`, `{"a":1,}`, `[1,]`, `[1 2]`,
	`{"a" 1}`, `{1:2}`, `tru`, `truex`, `nullx`, `{}x`, `[1]]`, ``, `   `, `nul`, `fals`, "\"\u2028\"", `{"a":{"b":{"c":[1,[2,[3]]]}}}`,
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001), strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
}

func TestFromJSONMatchesEncodingJSON(t *testing.T) {
	for _, in := range fromJSONSeeds {
		checkFromJSON(t, []byte(in))
	}
}

func checkFromJSON(t *testing.T, in []byte) {
	t.Helper()
	want, werr := fromJSONStd(in)
	got, gerr := FromJSON(in)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%.80q: encoding/json error %v, FromJSON error %v", in, werr, gerr)
	}
	if werr != nil {
		return
	}
	// DeepEqual first: cmp is slow on the 10,000-deep seed.
	if reflect.DeepEqual(want, got) {
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("%.80q (-encoding/json +FromJSON):\n%s", in, diff)
	}
}

// FuzzFromJSON holds the parser to encoding/json on any input: same
// values, and an error exactly when encoding/json errs.
func FuzzFromJSON(f *testing.F) {
	for _, s := range fromJSONSeeds {
		if len(s) < 1000 {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkFromJSON(t, in)
	})
}

// BenchmarkFromJSON converts a ~3 KB Deployment (the admission webhook's
// committed test object) for CEL.
func BenchmarkFromJSON(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "deployment.json"))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		fn   func([]byte) (any, error)
	}{{"parser", FromJSON}, {"encoding-json", fromJSONStd}} { // the second is the former FromJSON, for comparison
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.fn(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
