package image

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func openRemote(ctx context.Context, ref string, want v1.Platform, explicit bool, opts Options) (*Image, error) {
	var nopts []name.Option
	if opts.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("parse reference: %w", err)
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithPlatform(want), remote.WithUserAgent("bulwark")}
	if opts.Username != "" || opts.Password != "" {
		ropts = append(ropts, remote.WithAuth(&authn.Basic{Username: opts.Username, Password: opts.Password}))
	} else {
		kc := opts.Keychain
		if kc == nil {
			kc = authn.DefaultKeychain
		}
		ropts = append(ropts, remote.WithAuthFromKeychain(kc))
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, fmt.Errorf("get manifest: %w", err)
	}
	if len(desc.Manifest) > maxManifestBytes {
		return nil, fmt.Errorf("%w: manifest is %d bytes, limit %d", ErrLimit, len(desc.Manifest), maxManifestBytes)
	}
	im := &Image{}
	var img v1.Image
	switch mt := desc.MediaType; {
	case mt.IsIndex():
		im.IndexDigest = desc.Digest.String()
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("read index: %w", err)
		}
		if img, err = pickRemote(idx, want, 0); err != nil {
			return nil, err
		}
	case mt.IsSchema1():
		return nil, fmt.Errorf("%w: schema 1 manifests are not supported", ErrInvalid)
	case mt.IsImage():
		if img, err = desc.Image(); err != nil {
			return nil, fmt.Errorf("read image: %w", err)
		}
	default:
		return nil, fmt.Errorf("%w: media type %q is not an image", ErrInvalid, mt)
	}

	raw, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := parseManifest(raw)
	if err != nil {
		return nil, err
	}
	rawCfg, err := img.RawConfigFile() // verified against m.Config by go-containerregistry
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := parseConfig(rawCfg, len(m.Layers))
	if err != nil {
		return nil, err
	}
	if err := checkPlatform(cfg, want, explicit); err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	if len(layers) != len(m.Layers) {
		return nil, fmt.Errorf("%w: %d layers for %d in the manifest", ErrInvalid, len(layers), len(m.Layers))
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("manifest digest: %w", err)
	}
	im.Digest = digest.String()
	im.ID = m.Config.Digest.String()
	im.v1img = img
	if t, ok := r.(name.Tag); ok {
		im.RepoTags = []string{t.Name()}
	}
	for i, d := range m.Layers {
		im.srcs = append(im.srcs, layerSource{
			info: Layer{
				Digest:    d.Digest.String(),
				DiffID:    cfg.RootFS.DiffIDs[i].String(),
				Size:      d.Size,
				MediaType: string(d.MediaType),
			},
			// go-containerregistry checks size and digest when the body is
			// read to its end, which Walk always does: hashing it again
			// would cost ~20% of a scan for nothing.
			open:   layers[i].Compressed,
			verify: verifyNone,
		})
	}
	im.fill(cfg)
	return im, nil
}

// pickRemote chooses the image for want in a registry index.
func pickRemote(idx v1.ImageIndex, want v1.Platform, depth int) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	d, err := choosePlatform(im.Manifests, want)
	if err != nil {
		return nil, err
	}
	if d.Size > maxManifestBytes {
		return nil, fmt.Errorf("%w: manifest %s is %d bytes, limit %d", ErrLimit, d.Digest, d.Size, maxManifestBytes)
	}
	if d.MediaType.IsIndex() {
		if depth >= maxIndexDepth {
			return nil, fmt.Errorf("%w: indexes nested more than %d deep", ErrInvalid, maxIndexDepth)
		}
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("read index %s: %w", d.Digest, err)
		}
		return pickRemote(child, want, depth+1)
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w", d.Digest, err)
	}
	return img, nil
}
