package posture

import (
	"fmt"
	"testing"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
)

func newContainer(image string) *corev1.Container { return &corev1.Container{Name: "c", Image: image} }

// TestRefCache: a reference taken from the shared cache is what parsing
// gives (errors included), and the cache stays bounded.
func TestRefCache(t *testing.T) {
	rc := &refCache{}
	for _, img := range []string{"nginx", "nginx:latest", "registry.example.com/a/b:1@sha256:5e3f4b2d1c0a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706", "UPPER/case", ""} {
		for round := range 2 { // the second round is served from the cache
			cv := containerView{images: imageCache{m: map[string]parsedImage{}, shared: rc}}
			cv.c = newContainer(img)
			got, gotErr := cv.image()
			want, wantErr := reference.ParseNormalizedNamed(img)
			if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Errorf("%q round %d: got %v, %v; want %v, %v", img, round, got, gotErr, want, wantErr)
			}
			if _, ok := rc.get(img); !ok {
				t.Errorf("%q not cached", img)
			}
		}
	}
	for i := range maxCachedRefs + 10 {
		rc.put(fmt.Sprintf("img%d", i), parsedImage{})
	}
	if n := len(rc.m); n > maxCachedRefs {
		t.Errorf("cache holds %d references, bound %d", n, maxCachedRefs)
	}
	var nilCache *refCache
	nilCache.put("x", parsedImage{})
	if _, ok := nilCache.get("x"); ok {
		t.Error("a nil cache cached")
	}
}
