package testimage

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// imageSpec is what a recipe produces: compressed layer files on disk and
// the image configuration.
type imageSpec struct {
	created time.Time
	config  v1.Config
	layers  []layerSpec
	// notes are recorded in build.json (mirror used, package versions...).
	notes []string
}

type layerSpec struct {
	file      string // gzip-compressed tar
	createdBy string
	stats     layerStats
}

// defaultEnv is the PATH an image's config carries, as Debian's images do.
var defaultEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// v1Config is an image's runtime configuration.
func v1Config(env, cmd []string, workDir string) v1.Config {
	return v1.Config{Env: env, Cmd: cmd, WorkingDir: workDir}
}

// writeImage assembles spec into an OCI image and writes it to outDir as a
// docker-archive, an OCI layout and an OCI archive. The layer blobs are the
// recipe's gzip files, byte for byte, so all three formats share digests.
func writeImage(ctx context.Context, spec *imageSpec, outDir, tag string) (BuildInfo, error) {
	var info BuildInfo
	if len(spec.layers) == 0 {
		return info, fmt.Errorf("write image: no layers")
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return info, fmt.Errorf("write image: %w", err)
	}
	created := v1.Time{Time: spec.created.UTC()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	var adds []mutate.Addendum
	for _, ls := range spec.layers {
		l, err := tarball.LayerFromFile(ls.file, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return info, fmt.Errorf("write image: layer %s: %w", ls.file, err)
		}
		adds = append(adds, mutate.Addendum{
			Layer:     l,
			MediaType: types.OCILayer,
			History:   v1.History{Created: created, CreatedBy: ls.createdBy},
		})
		d, err := l.Digest()
		if err != nil {
			return info, fmt.Errorf("write image: layer %s: %w", ls.file, err)
		}
		diffID, err := l.DiffID()
		if err != nil {
			return info, fmt.Errorf("write image: layer %s: %w", ls.file, err)
		}
		info.Layers = append(info.Layers, LayerInfo{
			Digest: d.String(), DiffID: diffID.String(), CreatedBy: ls.createdBy,
			Entries: ls.stats.entries, Whiteouts: ls.stats.whiteouts,
			CompressedSize: ls.stats.compressed, UncompressedSize: ls.stats.uncompressed,
		})
		info.CompressedSize += ls.stats.compressed
		info.UncompressedSize += ls.stats.uncompressed
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		return info, fmt.Errorf("write image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return info, fmt.Errorf("write image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = created
	cf.Config = spec.config
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return info, fmt.Errorf("write image: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return info, err
	}

	ref, err := name.NewTag(tag)
	if err != nil {
		return info, fmt.Errorf("write image: tag %q: %w", tag, err)
	}
	dockerPath := filepath.Join(outDir, dockerArchiveFile)
	if err := tarball.WriteToFile(dockerPath, ref, img); err != nil {
		return info, fmt.Errorf("write docker archive: %w", err)
	}
	if fi, err := os.Stat(dockerPath); err == nil {
		info.DockerArchiveSize = fi.Size()
	}
	layoutDir := filepath.Join(outDir, ociLayoutDir)
	lp, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		return info, fmt.Errorf("write OCI layout: %w", err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref.TagStr(),
	})); err != nil {
		return info, fmt.Errorf("write OCI layout: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return info, err
	}
	if err := tarDir(filepath.Join(outDir, ociArchiveFile), layoutDir, spec.created); err != nil {
		return info, fmt.Errorf("write OCI archive: %w", err)
	}
	info.Tag = tag
	return info, nil
}

// tarDir writes the directory tree src as an uncompressed tar at dst, in
// sorted order with fixed times — the shape of an oci-archive (skopeo,
// buildah and podman write the layout directory as a plain tar).
func tarDir(dst, src string, mtime time.Time) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime.UTC(), Mode: 0o644, Typeflag: tar.TypeReg, Size: fi.Size()}
		if d.IsDir() {
			hdr.Name += "/"
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		} else if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		_, err = io.Copy(tw, in)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
