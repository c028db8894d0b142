package testimage

import (
	"context"
	"time"
)

// recipe describes how to build one image.
type recipe struct {
	name    string
	summary string
	// version is bumped whenever the recipe's code changes its output, so
	// cached images from the old code are rebuilt.
	version int
	// deps are images this one is derived from; their keys are part of
	// this one's key.
	deps []string
	// inputs returns further key material: hashes of the source files the
	// recipe reads and the parameters it passes to outside tools.
	inputs func(b *builder) ([]string, error)
	// requires are checked before building; a failure is ErrUnavailable.
	requires []requirement
	// build writes layer files below dir and describes the image.
	build func(ctx context.Context, b *builder, dir string) (*imageSpec, error)
}

// epoch is the creation time of the images whose layers are normalised
// (every image but the debootstrap ones, whose files keep the times dpkg
// gave them), so that rebuilding them gives the same bytes.
var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// recipeList is the explicit list of images, in build order. A test checks
// every entry builds and every name is unique.
func recipeList() []*recipe {
	return []*recipe{
		goVulnRecipe(),
		npmRecipe(),
		debianRecipe(),
		bigRecipe(),
		demoRecipe(),
	}
}
