package fsutil

import (
	"strings"
	"testing"
)

func TestDecodeJSONLimited(t *testing.T) {
	var v struct{ A int }
	if err := DecodeJSONLimited(strings.NewReader(`{"A":7}`), 7, &v); err != nil || v.A != 7 {
		t.Fatalf("a document of exactly the limit: %v, %+v", err, v)
	}
	if err := DecodeJSONLimited(strings.NewReader(`{"A":7} `), 7, &v); err == nil || !strings.Contains(err.Error(), "larger than 7 bytes") {
		t.Fatalf("one byte over the limit: %v", err)
	}
	// An endless stream is cut at the limit, not read to the end.
	if err := DecodeJSONLimited(endless{}, 1<<10, &v); err == nil {
		t.Fatal("endless input accepted")
	}
	if err := DecodeJSONLimited(strings.NewReader(`{"A":`), 100, &v); err == nil {
		t.Fatal("truncated JSON accepted")
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}
