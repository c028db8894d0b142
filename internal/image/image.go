package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Prefixes of Open's references that name a local source. Anything else is
// a registry reference.
const (
	PrefixDockerArchive = "docker-archive:"
	PrefixOCIArchive    = "oci-archive:"
	PrefixOCILayout     = "oci-layout:"
)

// Bounds on metadata. Real manifests and configs are a few KB; these stop a
// hostile source from making Open allocate without bound.
const (
	maxManifestBytes = 8 << 20
	maxConfigBytes   = 8 << 20
	maxLayers        = 1000
	maxIndexDepth    = 4
)

// ErrNotFound means a name selector (":TAG" of an archive) matched nothing;
// the message lists the names there are.
var ErrNotFound = errors.New("image not found")

// Options configure Open.
type Options struct {
	// Platform selects an image of a multi-platform index, as
	// "os/arch[/variant]". Empty means linux/amd64 for an index and any
	// platform for a single image; when set, a single image of another
	// platform is an error.
	Platform string
	// Username and Password authenticate to the registry. When both are
	// empty, credentials come from Keychain.
	Username, Password string
	// Keychain resolves registry credentials; nil means
	// authn.DefaultKeychain (the Docker config file and its helpers).
	Keychain authn.Keychain
	// Insecure allows plain HTTP (and is meant for loopback registries).
	Insecure bool
}

// Layer describes one layer of an image.
type Layer struct {
	// Digest is the digest of the layer blob as stored. Docker save archives
	// have no compressed digests: there it is the DiffID.
	Digest string
	// DiffID is the digest of the uncompressed tar (from the config).
	DiffID string
	// Size is the size of the stored blob, in bytes.
	Size      int64
	MediaType string
	// CreatedBy is the config history's command for this layer.
	CreatedBy string
}

// Image is one opened image for one platform. Close it when done.
type Image struct {
	// Ref is the reference given to Open.
	Ref string
	// Digest is the manifest digest ("" for docker save archives, which
	// carry no manifest); IndexDigest the digest of the multi-platform index
	// the image was chosen from, if any.
	Digest      string
	IndexDigest string
	// ID is the config digest, what `docker images` calls the image ID.
	ID string
	// Platform is "os/arch[/variant]" from the config.
	Platform string
	RepoTags []string
	Layers   []Layer
	Config   *v1.ConfigFile

	v1img  v1.Image
	srcs   []layerSource
	closer io.Closer
}

// V1 returns the go-containerregistry view of the image, for callers that
// need more than the fields above. For docker-archive sources its Digest and
// Manifest compress every layer to compute compressed digests: avoid them.
func (im *Image) V1() v1.Image { return im.v1img }

// Size is the stored size of all layers, in bytes.
func (im *Image) Size() int64 {
	var n int64
	for _, l := range im.Layers {
		n += l.Size
	}
	return n
}

// Close releases the archive file or directory the image is read from.
func (im *Image) Close() error {
	if im.closer == nil {
		return nil
	}
	return im.closer.Close()
}

// Open resolves ref to one image. ref is a registry reference
// ("registry.example/repo:tag", "repo@sha256:…"), "docker-archive:PATH",
// "oci-archive:PATH" or "oci-layout:DIR"; the archive and layout forms
// accept a ":NAME" suffix choosing one of several images by tag (docker) or
// by org.opencontainers.image.ref.name (OCI). Manifest and config are
// fetched and validated; layers are not read until Walk.
func Open(ctx context.Context, ref string, opts Options) (*Image, error) {
	want, explicit, err := parsePlatform(opts.Platform)
	if err != nil {
		return nil, err
	}
	var im *Image
	switch {
	case strings.HasPrefix(ref, PrefixDockerArchive):
		im, err = openDockerArchive(strings.TrimPrefix(ref, PrefixDockerArchive), want, explicit)
	case strings.HasPrefix(ref, PrefixOCIArchive):
		im, err = openOCIArchive(strings.TrimPrefix(ref, PrefixOCIArchive), want, explicit)
	case strings.HasPrefix(ref, PrefixOCILayout):
		im, err = openOCILayout(strings.TrimPrefix(ref, PrefixOCILayout), want, explicit)
	default:
		im, err = openRemote(ctx, ref, want, explicit, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("open image %s: %w", ref, err)
	}
	im.Ref = ref
	return im, nil
}

// splitSelector splits "PATH[:NAME]". Paths may contain ':' and names do
// (docker tags are "repo:tag"), so the first prefix that exists on disk is
// the path.
func splitSelector(s string) (p, sel string) {
	if _, err := os.Lstat(s); err == nil {
		return s, ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] != ':' {
			continue
		}
		if _, err := os.Lstat(s[:i]); err == nil {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func parsePlatform(s string) (v1.Platform, bool, error) {
	if s == "" {
		return v1.Platform{OS: "linux", Architecture: "amd64"}, false, nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, false, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
	}
	return *p, true, nil
}

// platformMatches is Platform.Satisfies, except that arm64 without a
// variant and arm64/v8 are the same platform (registries write both).
func platformMatches(have, want v1.Platform) bool {
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	if want.OSVersion != "" && have.OSVersion != want.OSVersion {
		return false
	}
	hv, wv := have.Variant, want.Variant
	if have.Architecture == "arm64" {
		if hv == "v8" {
			hv = ""
		}
		if wv == "v8" {
			wv = ""
		}
	}
	return wv == "" || hv == wv
}

func platformString(p *v1.Platform) string {
	if p == nil {
		return ""
	}
	return (&v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}).String()
}

// noPlatform builds the error listing the platforms there are.
func noPlatform(want v1.Platform, have []string) error {
	var avail []string
	for _, p := range have {
		if p != "" && p != "unknown/unknown" && !slices.Contains(avail, p) {
			avail = append(avail, p)
		}
	}
	slices.Sort(avail)
	if len(avail) == 0 {
		return fmt.Errorf("%w %s (the index names no platforms)", ErrNoPlatform, platformString(&want))
	}
	return fmt.Errorf("%w %s; available: %s", ErrNoPlatform, platformString(&want), strings.Join(avail, ", "))
}

// choosePlatform picks the manifest for want among an index's descriptors.
// Attestation manifests ("unknown/unknown") never match a real platform.
func choosePlatform(descs []v1.Descriptor, want v1.Platform) (v1.Descriptor, error) {
	var have []string
	var anon []v1.Descriptor
	for _, d := range descs {
		if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			continue
		}
		if d.Platform == nil {
			anon = append(anon, d)
			continue
		}
		if platformMatches(*d.Platform, want) {
			return d, nil
		}
		have = append(have, platformString(d.Platform))
	}
	if len(have) == 0 && len(anon) == 1 {
		// One image without a platform: its config decides (checkPlatform).
		return anon[0], nil
	}
	return v1.Descriptor{}, noPlatform(want, have)
}

// checkPlatform rejects a single-platform image of another platform than
// the one explicitly asked for.
func checkPlatform(cfg *v1.ConfigFile, want v1.Platform, explicit bool) error {
	if !explicit || cfg.OS == "" {
		return nil
	}
	have := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion}
	if platformMatches(have, want) {
		return nil
	}
	return fmt.Errorf("%w %s: the image is %s", ErrNoPlatform, platformString(&want), platformString(&have))
}

// parseManifest validates an image manifest.
func parseManifest(raw []byte) (*v1.Manifest, error) {
	if len(raw) > maxManifestBytes {
		return nil, fmt.Errorf("%w: manifest is %d bytes, limit %d", ErrLimit, len(raw), maxManifestBytes)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: parse manifest: %w", ErrInvalid, err)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w: manifest schema version %d, want 2", ErrInvalid, m.SchemaVersion)
	}
	switch m.Config.MediaType {
	case "", types.DockerConfigJSON, types.OCIConfigJSON:
	default:
		return nil, fmt.Errorf("%w: config media type %q: not a container image", ErrInvalid, m.Config.MediaType)
	}
	if m.Config.Size < 0 || m.Config.Size > maxConfigBytes {
		return nil, fmt.Errorf("%w: config is %d bytes, limit %d", ErrLimit, m.Config.Size, maxConfigBytes)
	}
	if len(m.Layers) > maxLayers {
		return nil, fmt.Errorf("%w: %d layers, limit %d", ErrLimit, len(m.Layers), maxLayers)
	}
	for _, l := range m.Layers {
		if l.Size < 0 {
			return nil, fmt.Errorf("%w: layer %s has size %d", ErrInvalid, l.Digest, l.Size)
		}
	}
	return m, nil
}

// parseConfig validates an image config for an image of nLayers layers.
func parseConfig(raw []byte, nLayers int) (*v1.ConfigFile, error) {
	if len(raw) > maxConfigBytes {
		return nil, fmt.Errorf("%w: config is %d bytes, limit %d", ErrLimit, len(raw), maxConfigBytes)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: parse config: %w", ErrInvalid, err)
	}
	if n := len(cfg.RootFS.DiffIDs); n != nLayers {
		return nil, fmt.Errorf("%w: config lists %d diff_ids for %d layers", ErrInvalid, n, nLayers)
	}
	return cfg, nil
}

// createdBy maps the config history to layers: history entries marked
// empty_layer have no layer.
func createdBy(cfg *v1.ConfigFile, n int) []string {
	out := make([]string, n)
	i := 0
	for _, h := range cfg.History {
		if h.EmptyLayer {
			continue
		}
		if i < n {
			out[i] = h.CreatedBy
		}
		i++
	}
	return out
}

// fill sets the fields every source derives from manifest and config.
func (im *Image) fill(cfg *v1.ConfigFile) {
	im.Config = cfg
	im.Platform = platformString(&v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant})
	cb := createdBy(cfg, len(im.srcs))
	im.Layers = make([]Layer, len(im.srcs))
	for i := range im.srcs {
		im.srcs[i].info.CreatedBy = cb[i]
		im.Layers[i] = im.srcs[i].info
	}
}

// readBounded reads a whole small file of a source, failing beyond max.
func readBounded(rc io.ReadCloser, what string, max int64) ([]byte, error) {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrLimit, what, max)
	}
	return b, nil
}
