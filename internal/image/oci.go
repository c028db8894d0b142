package image

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// OCI image layouts are read by one resolver over a blobStore, whether they
// are a directory (os.Root) or a tar archive (tarIndex, read in place).
// pkg/v1/layout is not used: it reads a directory only, and reads index.json
// and manifests without a size bound.

const (
	annotationRefName       = "org.opencontainers.image.ref.name"
	annotationContainerName = "io.containerd.image.name"
)

func openOCILayout(arg string, want v1.Platform, explicit bool) (*Image, error) {
	dir, sel := splitSelector(arg)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	im, err := openOCI(dirStore{root}, sel, want, explicit)
	if err != nil {
		root.Close()
		return nil, err
	}
	im.closer = root
	return im, nil
}

func openOCIArchive(arg string, want v1.Platform, explicit bool) (*Image, error) {
	file, sel := splitSelector(arg)
	t, err := openTarIndex(file)
	if err != nil {
		return nil, err
	}
	im, err := openOCI(t, sel, want, explicit)
	if err != nil {
		t.Close()
		return nil, err
	}
	im.closer = t
	return im, nil
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// readBlob reads a small blob and checks it against its descriptor.
func readBlob(s blobStore, d v1.Descriptor, max int64) ([]byte, error) {
	if d.Size > max {
		return nil, fmt.Errorf("%w: blob %s is %d bytes, limit %d", ErrLimit, d.Digest, d.Size, max)
	}
	b, err := readFile(s, blobPath(d.Digest), max)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != d.Size {
		return nil, fmt.Errorf("%w: blob %s has %d bytes, descriptor says %d", ErrDigestMismatch, d.Digest, len(b), d.Size)
	}
	h, err := v1.Hasher(d.Digest.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	h.Write(b)
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Digest.Hex {
		return nil, fmt.Errorf("%w: blob %s hashes to %s", ErrDigestMismatch, d.Digest, got)
	}
	return b, nil
}

// candidate is an image manifest found in an index, with the name of the
// top-level entry it was reached from.
type candidate struct {
	desc  v1.Descriptor
	names []string
	index string // digest of the index listing desc ("" for index.json)
}

func refNames(d v1.Descriptor) []string {
	var out []string
	for _, k := range []string{annotationRefName, annotationContainerName} {
		if v := d.Annotations[k]; v != "" {
			out = append(out, v)
		}
	}
	return out
}

func collect(s blobStore, descs []v1.Descriptor, names []string, index string, depth int, out *[]candidate) error {
	for _, d := range descs {
		n := names
		if names == nil {
			n = refNames(d)
		}
		switch {
		case d.MediaType.IsImage():
			*out = append(*out, candidate{desc: d, names: n, index: index})
		case d.MediaType.IsIndex():
			if depth >= maxIndexDepth {
				return fmt.Errorf("%w: indexes nested more than %d deep", ErrInvalid, maxIndexDepth)
			}
			raw, err := readBlob(s, d, maxManifestBytes)
			if err != nil {
				return err
			}
			idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
			if err != nil {
				return fmt.Errorf("%w: parse index %s: %w", ErrInvalid, d.Digest, err)
			}
			if n == nil {
				n = []string{}
			}
			if err := collect(s, idx.Manifests, n, d.Digest.String(), depth+1, out); err != nil {
				return err
			}
		}
	}
	return nil
}

func openOCI(s blobStore, sel string, want v1.Platform, explicit bool) (*Image, error) {
	raw, err := readFile(s, "index.json", maxManifestBytes)
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: parse index.json: %w", ErrInvalid, err)
	}
	var cands []candidate
	if err := collect(s, idx.Manifests, nil, "", 0, &cands); err != nil {
		return nil, err
	}
	if sel != "" {
		var all []string
		matched := cands[:0:0]
		for _, c := range cands {
			if slices.Contains(c.names, sel) {
				matched = append(matched, c)
			}
			all = append(all, c.names...)
		}
		if len(matched) == 0 {
			return nil, fmt.Errorf("%w: no image named %q; names: %s", ErrNotFound, sel, strings.Join(dedupe(all), ", "))
		}
		cands = matched
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("%w: index.json lists no image manifest", ErrInvalid)
	}
	c := cands[0]
	if len(cands) > 1 {
		if c, err = chooseCandidate(s, cands, want); err != nil {
			return nil, err
		}
	}
	rawM, err := readBlob(s, c.desc, maxManifestBytes)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := parseManifest(rawM)
	if err != nil {
		return nil, err
	}
	rawCfg, err := readBlob(s, m.Config, maxConfigBytes)
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
	img, err := partial.CompressedToImage(&ociCore{store: s, desc: c.desc, rawManifest: rawM, rawConfig: rawCfg, m: m})
	if err != nil {
		return nil, err
	}
	im := &Image{
		Digest:      c.desc.Digest.String(),
		IndexDigest: c.index,
		ID:          m.Config.Digest.String(),
		RepoTags:    c.names,
		v1img:       img,
	}
	for i, d := range m.Layers {
		im.srcs = append(im.srcs, layerSource{
			info: Layer{
				Digest:    d.Digest.String(),
				DiffID:    cfg.RootFS.DiffIDs[i].String(),
				Size:      d.Size,
				MediaType: string(d.MediaType),
			},
			open:   ociBlobOpener(s, d.Digest),
			verify: verifyBlob,
		})
	}
	im.fill(cfg)
	return im, nil
}

func ociBlobOpener(s blobStore, h v1.Hash) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		rc, _, err := s.open(blobPath(h))
		return rc, err
	}
}

// chooseCandidate picks the image for want among several manifests. Those
// whose descriptor names no platform (plain layouts with several images)
// are looked up in their config.
func chooseCandidate(s blobStore, cands []candidate, want v1.Platform) (candidate, error) {
	var have []string
	var match []candidate
	for _, c := range cands {
		p := c.desc.Platform
		if p == nil {
			var err error
			if p, err = configPlatform(s, c.desc); err != nil {
				return candidate{}, err
			}
		}
		if platformMatches(*p, want) {
			match = append(match, c)
		}
		have = append(have, platformString(p))
	}
	switch {
	case len(match) == 0:
		return candidate{}, noPlatform(want, have)
	case len(match) > 1 && match[0].desc.Digest != match[len(match)-1].desc.Digest:
		var names []string
		for _, c := range match {
			names = append(names, c.names...)
		}
		return candidate{}, fmt.Errorf("%d images for %s; choose one by appending :NAME (names: %s)",
			len(match), platformString(&want), strings.Join(dedupe(names), ", "))
	}
	return match[0], nil
}

func configPlatform(s blobStore, d v1.Descriptor) (*v1.Platform, error) {
	rawM, err := readBlob(s, d, maxManifestBytes)
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(rawM)
	if err != nil {
		return nil, err
	}
	rawCfg, err := readBlob(s, m.Config, maxConfigBytes)
	if err != nil {
		return nil, err
	}
	cfg, err := parseConfig(rawCfg, len(m.Layers))
	if err != nil {
		return nil, err
	}
	return &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion}, nil
}

func dedupe(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// ociCore is the partial.CompressedImageCore that gives an OCI source its
// v1.Image view.
type ociCore struct {
	store                  blobStore
	desc                   v1.Descriptor
	rawManifest, rawConfig []byte
	m                      *v1.Manifest
}

func (c *ociCore) RawConfigFile() ([]byte, error) { return c.rawConfig, nil }
func (c *ociCore) RawManifest() ([]byte, error)   { return c.rawManifest, nil }

func (c *ociCore) MediaType() (types.MediaType, error) {
	if c.m.MediaType != "" {
		return c.m.MediaType, nil
	}
	return c.desc.MediaType, nil
}

func (c *ociCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == c.m.Config.Digest {
		return &ociLayer{store: c.store, desc: c.m.Config}, nil
	}
	for _, d := range c.m.Layers {
		if d.Digest == h {
			return &ociLayer{store: c.store, desc: d}, nil
		}
	}
	return nil, fmt.Errorf("blob %s not in manifest", h)
}

type ociLayer struct {
	store blobStore
	desc  v1.Descriptor
}

func (l *ociLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *ociLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *ociLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *ociLayer) Compressed() (io.ReadCloser, error) {
	rc, _, err := l.store.open(blobPath(l.desc.Digest))
	return rc, err
}
