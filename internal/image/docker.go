package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// docker save archives are read in place through a tarIndex. pkg/v1/tarball
// is not used to read them: for the usual uncompressed layers its v1.Image
// computes compressed digests by gzipping every layer, it rescans the
// archive from the start for each file, and it reads manifest.json without
// a size bound.

type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func openDockerArchive(arg string, want v1.Platform, explicit bool) (*Image, error) {
	file, sel := splitSelector(arg)
	t, err := openTarIndex(file)
	if err != nil {
		return nil, err
	}
	im, err := readDockerArchive(t, sel, want, explicit)
	if err != nil {
		t.Close()
		return nil, err
	}
	im.closer = t
	return im, nil
}

func readDockerArchive(t *tarIndex, sel string, want v1.Platform, explicit bool) (*Image, error) {
	raw, err := readFile(t, "manifest.json", maxManifestBytes)
	if err != nil {
		return nil, err
	}
	var entries []dockerManifestEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("%w: parse manifest.json: %w", ErrInvalid, err)
	}
	e, err := chooseDockerEntry(entries, sel)
	if err != nil {
		return nil, err
	}
	if len(e.Layers) > maxLayers {
		return nil, fmt.Errorf("%w: %d layers, limit %d", ErrLimit, len(e.Layers), maxLayers)
	}
	cfgPath, ok := cleanPath(e.Config)
	if !ok || cfgPath == "" {
		return nil, fmt.Errorf("%w: config path %q", ErrInvalid, e.Config)
	}
	rawCfg, err := readFile(t, cfgPath, maxConfigBytes)
	if err != nil {
		return nil, err
	}
	cfg, err := parseConfig(rawCfg, len(e.Layers))
	if err != nil {
		return nil, err
	}
	if err := checkPlatform(cfg, want, explicit); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(rawCfg)
	im := &Image{ID: "sha256:" + hex.EncodeToString(sum[:]), RepoTags: e.RepoTags}
	core := &dockerCore{rawConfig: rawCfg}
	for i, lp := range e.Layers {
		p, ok := cleanPath(lp)
		tf, found := t.lookup(p)
		if !ok || !found {
			return nil, fmt.Errorf("%w: layer %q is not in the archive", ErrInvalid, lp)
		}
		var magic [4]byte
		n, _ := t.f.ReadAt(magic[:], tf.off)
		mt := types.DockerUncompressedLayer
		if sniff(magic[:n]) != compNone {
			mt = types.DockerLayer
		}
		diffID := cfg.RootFS.DiffIDs[i]
		open := func() (io.ReadCloser, error) {
			rc, _, err := t.open(p)
			return rc, err
		}
		im.srcs = append(im.srcs, layerSource{
			info: Layer{
				Digest:    diffID.String(),
				DiffID:    diffID.String(),
				Size:      tf.size,
				MediaType: string(mt),
			},
			open:   open,
			verify: verifyDiffID,
		})
		core.layers = append(core.layers, &dockerLayer{diffID: diffID, open: open})
	}
	im.v1img, err = partial.UncompressedToImage(core)
	if err != nil {
		return nil, err
	}
	im.fill(cfg)
	return im, nil
}

func chooseDockerEntry(entries []dockerManifestEntry, sel string) (dockerManifestEntry, error) {
	var tags []string
	for _, e := range entries {
		tags = append(tags, e.RepoTags...)
	}
	switch {
	case len(entries) == 0:
		return dockerManifestEntry{}, fmt.Errorf("%w: manifest.json lists no image", ErrInvalid)
	case sel == "" && len(entries) == 1:
		return entries[0], nil
	case sel == "":
		return dockerManifestEntry{}, fmt.Errorf("the archive holds %d images; choose one by appending :TAG (tags: %s)",
			len(entries), strings.Join(dedupe(tags), ", "))
	}
	for _, e := range entries {
		if slices.Contains(e.RepoTags, sel) {
			return e, nil
		}
	}
	// "alpine:3.18" names "index.docker.io/library/alpine:3.18" too.
	if want, err := name.NewTag(sel); err == nil {
		for _, e := range entries {
			for _, tag := range e.RepoTags {
				if t, err := name.NewTag(tag); err == nil && t.Name() == want.Name() {
					return e, nil
				}
			}
		}
	}
	return dockerManifestEntry{}, fmt.Errorf("%w: no image tagged %q; tags: %s", ErrNotFound, sel, strings.Join(dedupe(tags), ", "))
}

// dockerCore is the partial.UncompressedImageCore that gives a docker save
// archive its v1.Image view.
type dockerCore struct {
	rawConfig []byte
	layers    []*dockerLayer
}

func (c *dockerCore) RawConfigFile() ([]byte, error) { return c.rawConfig, nil }
func (c *dockerCore) MediaType() (types.MediaType, error) {
	return types.DockerManifestSchema2, nil
}

func (c *dockerCore) LayerByDiffID(h v1.Hash) (partial.UncompressedLayer, error) {
	for _, l := range c.layers {
		if l.diffID == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("layer %s not in archive", h)
}

type dockerLayer struct {
	diffID v1.Hash
	open   func() (io.ReadCloser, error)
}

func (l *dockerLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *dockerLayer) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }

// Uncompressed returns the layer's tar, decompressing stored gzip or zstd.
func (l *dockerLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.open()
	if err != nil {
		return nil, err
	}
	return decompress(rc)
}

// decompress wraps a blob stream with the decompressor its magic bytes call
// for. It is for the v1.Image views; Walk manages its own decompressors.
func decompress(rc io.ReadCloser) (io.ReadCloser, error) {
	br := bufioReader(rc)
	magic, _ := br.Peek(4)
	switch sniff(magic) {
	case compGzip:
		gz, err := gzip.NewReader(br)
		if err != nil {
			rc.Close()
			return nil, err
		}
		return readCloser{gz, func() error { gz.Close(); return rc.Close() }}, nil
	case compZstd:
		zd, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			rc.Close()
			return nil, err
		}
		return readCloser{zd, func() error { zd.Close(); return rc.Close() }}, nil
	}
	return readCloser{br, rc.Close}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }
