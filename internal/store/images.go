package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// Image is one image manifest, identified by its digest.
type Image struct {
	ID           int64
	Digest       string
	ConfigDigest string
	Platform     string
	// OS is the detected distribution, "debian 12".
	OS     string
	Size   int64
	Layers []scan.Layer
	// FirstSeen and LastSeen span every report of the image: scans, pushes,
	// sightings in clusters.
	FirstSeen     time.Time
	LastSeen      time.Time
	LastScannedAt time.Time
	// LastMatchedAt is when its findings were last replaced (scan or
	// re-match against a newer vulnerability database).
	LastMatchedAt time.Time
	PackageCount  int
	// Counts of open findings.
	Counts FindingCounts
	// Refs are where the image was pulled from or pushed to (GetImage only).
	Refs []ImageRef
	// Sightings are where it runs (GetImage only).
	Sightings []Sighting
}

// FindingCounts summarise an image's open findings.
type FindingCounts struct {
	Critical, High, Medium, Low, Unknown int
	// KEV counts findings in CISA's Known Exploited Vulnerabilities.
	KEV int
	// Fixable counts findings with a fixed version.
	Fixable int
}

// Total is the number of open findings.
func (c FindingCounts) Total() int { return c.Critical + c.High + c.Medium + c.Low + c.Unknown }

// ImageRef is a registry/repository:tag the image was known by. Tag is
// empty for a reference by digest.
type ImageRef struct {
	Registry   string
	Repository string
	Tag        string
	FirstSeen  time.Time
	LastSeen   time.Time
}

// String renders the reference as registry/repository[:tag].
func (r ImageRef) String() string {
	s := r.Registry + "/" + r.Repository
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	return s
}

// Sighting is a place an image was seen running.
type Sighting struct {
	Cluster   string
	Namespace string
	// Workload is "kind/name", e.g. "Deployment/web".
	Workload  string
	FirstSeen time.Time
	LastSeen  time.Time
}

// digestRE is the OCI digest grammar (algorithm ":" encoded).
var digestRE = regexp.MustCompile(`^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`)

func validDigest(d string) error {
	if len(d) > 256 || !digestRE.MatchString(d) {
		return invalid("image digest %q (want algorithm:hex, e.g. sha256:…)", d)
	}
	if alg, enc, _ := strings.Cut(d, ":"); alg == "sha256" && len(enc) != 64 {
		return invalid("image digest %q: sha256 wants 64 hex digits", d)
	}
	return nil
}

// ParseImageRef splits a reference such as "registry.example.com/app:1.2"
// or "alpine" (Docker Hub defaults applied) into an ImageRef.
func ParseImageRef(ref string) (ImageRef, error) {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return ImageRef{}, invalid("image reference %q: %v", ref, err)
	}
	out := ImageRef{Registry: r.Context().RegistryStr(), Repository: r.Context().RepositoryStr()}
	if t, ok := r.(name.Tag); ok {
		out.Tag = t.TagStr()
	}
	return out, nil
}

// upsertImage inserts or refreshes the image row and returns its id. The
// upsert takes the row lock (PostgreSQL), which serializes concurrent saves
// of one digest until the transaction ends.
func (s *Store) upsertImage(ctx context.Context, q querier, im *Image, seen time.Time) (int64, error) {
	layers, _ := json.Marshal(nonNil(im.Layers))
	var id int64
	err := s.queryRow(ctx, q, `INSERT INTO images (digest, config_digest, platform, os, size, layers, first_seen, last_seen)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (digest) DO UPDATE SET
			config_digest = CASE WHEN excluded.config_digest <> '' THEN excluded.config_digest ELSE images.config_digest END,
			platform = CASE WHEN excluded.platform <> '' THEN excluded.platform ELSE images.platform END,
			os = CASE WHEN excluded.os <> '' THEN excluded.os ELSE images.os END,
			size = CASE WHEN excluded.size <> 0 THEN excluded.size ELSE images.size END,
			layers = CASE WHEN excluded.layers <> '[]' THEN excluded.layers ELSE images.layers END,
			last_seen = CASE WHEN excluded.last_seen > images.last_seen THEN excluded.last_seen ELSE images.last_seen END
		RETURNING id`,
		im.Digest, im.ConfigDigest, im.Platform, im.OS, im.Size, string(layers), s.ts(seen), s.ts(seen)).Scan(&id)
	return id, err
}

func (s *Store) upsertRefs(ctx context.Context, q querier, imageID int64, refs []ImageRef, seen time.Time) error {
	for _, r := range refs {
		if r.Registry == "" || r.Repository == "" {
			continue
		}
		if _, err := s.exec(ctx, q, `INSERT INTO image_refs (image_id, registry, repository, tag, first_seen, last_seen)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (image_id, registry, repository, tag) DO UPDATE SET
				last_seen = CASE WHEN excluded.last_seen > image_refs.last_seen THEN excluded.last_seen ELSE image_refs.last_seen END`,
			imageID, r.Registry, r.Repository, r.Tag, s.ts(seen), s.ts(seen)); err != nil {
			return fmt.Errorf("save reference %s: %w", r, err)
		}
	}
	return nil
}

// RecordImageRef notes that digest was pushed to or pulled from ref (a
// registry notification) without scanning it; the image row is created if
// needed so that a later scan job has somewhere to land.
func (s *Store) RecordImageRef(ctx context.Context, digest string, ref ImageRef, at time.Time) error {
	if err := validDigest(digest); err != nil {
		return fmt.Errorf("record image ref: %w", err)
	}
	if ref.Registry == "" || ref.Repository == "" {
		return fmt.Errorf("record image ref: %w", invalid("reference needs a registry and a repository"))
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		id, err := s.upsertImage(ctx, tx, &Image{Digest: digest}, at)
		if err != nil {
			return err
		}
		return s.upsertRefs(ctx, tx, id, []ImageRef{ref}, at)
	})
	return s.wrapErr("record image ref "+digest, err)
}

// RecordSighting notes that digest runs in cluster/namespace/workload (an
// agent's report). Images seen running are kept current by re-matching.
func (s *Store) RecordSighting(ctx context.Context, digest string, sg Sighting) error {
	if err := validDigest(digest); err != nil {
		return fmt.Errorf("record sighting: %w", err)
	}
	if sg.Cluster == "" {
		return fmt.Errorf("record sighting: %w", invalid("cluster is empty"))
	}
	at := sg.LastSeen
	if at.IsZero() {
		at = s.now()
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		id, err := s.upsertImage(ctx, tx, &Image{Digest: digest}, at)
		if err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, `INSERT INTO image_sightings (image_id, cluster, namespace, workload, first_seen, last_seen)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (image_id, cluster, namespace, workload) DO UPDATE SET
				last_seen = CASE WHEN excluded.last_seen > image_sightings.last_seen THEN excluded.last_seen ELSE image_sightings.last_seen END`,
			id, sg.Cluster, sg.Namespace, sg.Workload, s.ts(at), s.ts(at))
		return err
	})
	return s.wrapErr("record sighting "+digest, err)
}

const imageCols = `images.id, images.digest, images.config_digest, images.platform, images.os, images.size, images.layers,
	images.first_seen, images.last_seen, images.last_scanned_at, images.last_matched_at, images.package_count,
	images.critical, images.high, images.medium, images.low, images.unknown, images.kev, images.fixable`

func scanImage(sc scanner) (*Image, error) {
	var im Image
	var layers string
	c := &im.Counts
	if err := sc.Scan(&im.ID, &im.Digest, &im.ConfigDigest, &im.Platform, &im.OS, &im.Size, &layers,
		tcol(&im.FirstSeen), tcol(&im.LastSeen), tcol(&im.LastScannedAt), tcol(&im.LastMatchedAt), &im.PackageCount,
		&c.Critical, &c.High, &c.Medium, &c.Low, &c.Unknown, &c.KEV, &c.Fixable); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(layers), &im.Layers); err != nil {
		return nil, fmt.Errorf("image %s layers: %w", im.Digest, err)
	}
	return &im, nil
}

// GetImage returns an image with its references and sightings.
func (s *Store) GetImage(ctx context.Context, digest string) (*Image, error) {
	op := "get image " + digest
	im, err := scanImage(s.queryRow(ctx, s.r, `SELECT `+imageCols+` FROM images WHERE digest = ?`, digest))
	if err != nil {
		return nil, s.wrapErr(op, err)
	}
	rows, err := s.query(ctx, s.r, `SELECT registry, repository, tag, first_seen, last_seen FROM image_refs
		WHERE image_id = ? ORDER BY registry, repository, tag`, im.ID)
	if err != nil {
		return nil, s.wrapErr(op, err)
	}
	for rows.Next() {
		var r ImageRef
		if err := rows.Scan(&r.Registry, &r.Repository, &r.Tag, tcol(&r.FirstSeen), tcol(&r.LastSeen)); err != nil {
			rows.Close()
			return nil, s.wrapErr(op, err)
		}
		im.Refs = append(im.Refs, r)
	}
	rows.Close()
	rows, err = s.query(ctx, s.r, `SELECT cluster, namespace, workload, first_seen, last_seen FROM image_sightings
		WHERE image_id = ? ORDER BY cluster, namespace, workload`, im.ID)
	if err != nil {
		return nil, s.wrapErr(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var sg Sighting
		if err := rows.Scan(&sg.Cluster, &sg.Namespace, &sg.Workload, tcol(&sg.FirstSeen), tcol(&sg.LastSeen)); err != nil {
			return nil, s.wrapErr(op, err)
		}
		im.Sightings = append(im.Sightings, sg)
	}
	return im, s.wrapErr(op, rows.Err())
}

// DeleteImage removes an image with its SBOM, findings and history.
func (s *Store) DeleteImage(ctx context.Context, digest string) error {
	res, err := s.exec(ctx, s.w, `DELETE FROM images WHERE digest = ?`, digest)
	if err != nil {
		return s.wrapErr("delete image "+digest, err)
	}
	return affectedOne(res, "delete image "+digest)
}

// ImageFilter narrows ListImages. Zero fields do not filter.
type ImageFilter struct {
	// Query matches a substring of the digest or of any repository.
	Query      string
	Registry   string
	Repository string
	Tag        string
	// MinSeverity keeps images with an open finding at least this severe.
	MinSeverity vulndb.Severity
	KEV         bool // with an open known-exploited finding
	Fixable     bool // with an open fixable finding
	// Cluster and Namespace keep images seen running there.
	Cluster   string
	Namespace string
	// SeenSince keeps images seen (pushed, scanned, running) since then.
	SeenSince time.Time
	// Package keeps images containing this package (by name, and
	// ecosystem and version when set): "which images have log4j-core".
	Package          string
	PackageEcosystem string
	PackageVersion   string
}

// ImageSorts are the sort keys ListImages accepts.
var imageSorts = map[string]string{
	"digest":     "images.digest",
	"first_seen": "images.first_seen",
	"last_seen":  "images.last_seen",
	"scanned":    "images.last_scanned_at",
	"critical":   "images.critical",
	"high":       "images.high",
	"kev":        "images.kev",
	"fixable":    "images.fixable",
	"findings":   "(images.critical + images.high + images.medium + images.low + images.unknown)",
	// risk orders by the most severe counts first: exploited, critical, high.
	"risk":     "(images.kev * 1000000 + images.critical * 10000 + images.high * 100 + images.medium)",
	"packages": "images.package_count",
	"size":     "images.size",
}

// ListImages returns a page of images and the total matching the filter.
// Sort keys: digest, first_seen, last_seen (default -last_seen), scanned,
// critical, high, kev, fixable, findings, risk, packages, size.
func (s *Store) ListImages(ctx context.Context, f ImageFilter, p Page) ([]Image, int, error) {
	order, err := p.orderBy(imageSorts, "-last_seen", "images.id")
	if err != nil {
		return nil, 0, fmt.Errorf("list images: %w", err)
	}
	var w where
	if f.Query != "" {
		pat := "%" + likeEscape(f.Query) + "%"
		w.add(`(images.digest `+s.d.like+` ? ESCAPE '\' OR EXISTS (SELECT 1 FROM image_refs r WHERE r.image_id = images.id
			AND (r.repository `+s.d.like+` ? ESCAPE '\' OR r.registry `+s.d.like+` ? ESCAPE '\')))`, pat, pat, pat)
	}
	if f.Registry != "" || f.Repository != "" || f.Tag != "" {
		c := `EXISTS (SELECT 1 FROM image_refs r WHERE r.image_id = images.id`
		var args []any
		if f.Registry != "" {
			c += ` AND r.registry = ?`
			args = append(args, f.Registry)
		}
		if f.Repository != "" {
			c += ` AND r.repository = ?`
			args = append(args, f.Repository)
		}
		if f.Tag != "" {
			c += ` AND r.tag = ?`
			args = append(args, f.Tag)
		}
		w.add(c+`)`, args...)
	}
	switch f.MinSeverity {
	case vulndb.SeverityUnknown:
	case vulndb.SeverityLow:
		w.add(`(images.critical + images.high + images.medium + images.low) > 0`)
	case vulndb.SeverityMedium:
		w.add(`(images.critical + images.high + images.medium) > 0`)
	case vulndb.SeverityHigh:
		w.add(`(images.critical + images.high) > 0`)
	case vulndb.SeverityCritical:
		w.add(`images.critical > 0`)
	default:
		return nil, 0, fmt.Errorf("list images: %w", invalid("severity %d", f.MinSeverity))
	}
	if f.KEV {
		w.add(`images.kev > 0`)
	}
	if f.Fixable {
		w.add(`images.fixable > 0`)
	}
	if f.Cluster != "" || f.Namespace != "" {
		c := `EXISTS (SELECT 1 FROM image_sightings g WHERE g.image_id = images.id`
		var args []any
		if f.Cluster != "" {
			c += ` AND g.cluster = ?`
			args = append(args, f.Cluster)
		}
		if f.Namespace != "" {
			c += ` AND g.namespace = ?`
			args = append(args, f.Namespace)
		}
		w.add(c+`)`, args...)
	}
	if !f.SeenSince.IsZero() {
		w.add(`images.last_seen >= ?`, s.ts(f.SeenSince))
	}
	if f.Package != "" {
		c := `EXISTS (SELECT 1 FROM image_packages k WHERE k.image_id = images.id AND k.name = ?`
		args := []any{f.Package}
		if f.PackageEcosystem != "" {
			c += ` AND k.ecosystem = ?`
			args = append(args, f.PackageEcosystem)
		}
		if f.PackageVersion != "" {
			c += ` AND k.version = ?`
			args = append(args, f.PackageVersion)
		}
		w.add(c+`)`, args...)
	}
	var out []Image
	total, err := s.list(ctx, imageCols, "images", &w, order, p, func(sc scanner) error {
		im, err := scanImage(sc)
		if err == nil {
			out = append(out, *im)
		}
		return err
	})
	if err != nil {
		return nil, 0, s.wrapErr("list images", err)
	}
	return out, total, nil
}

// SBOM is the stored inventory of an image: what re-matching reads instead
// of pulling the image again.
type SBOM struct {
	Digest   string
	OS       *inventory.OS
	Packages []inventory.Package
	// Tool and its extractor versions produced the inventory; a newer
	// extractor means the SBOM is stale and the image should be rescanned.
	Tool      scan.Tool
	CreatedAt time.Time
}

// sbomBlob is the JSON inside the zstd blob. Versioned so the layout can
// change without a migration of old rows.
type sbomBlob struct {
	Version  int                 `json:"v"`
	OS       *inventory.OS       `json:"os,omitempty"`
	Packages []inventory.Package `json:"packages"`
	Tool     scan.Tool           `json:"tool"`
}

const sbomEncoding = "zstd+json/v1"

// encodedSBOM is an SBOM ready to store.
type encodedSBOM struct {
	blob []byte // zstd-compressed JSON
	hash []byte // SHA-256 of the JSON: an unchanged inventory is not rewritten
}

func (s *Store) encodeSBOM(res *scan.Result) (encodedSBOM, error) {
	b, err := json.Marshal(sbomBlob{Version: 1, OS: res.OS, Packages: nonNil(res.Packages), Tool: res.Tool})
	if err != nil {
		return encodedSBOM{}, err
	}
	h := sha256.Sum256(b)
	return encodedSBOM{blob: s.zenc.EncodeAll(b, make([]byte, 0, len(b)/4)), hash: h[:]}, nil
}

// GetSBOM returns the stored inventory of an image.
func (s *Store) GetSBOM(ctx context.Context, digest string) (*SBOM, error) {
	op := "get sbom " + digest
	var enc string
	var data []byte
	out := &SBOM{Digest: digest}
	err := s.queryRow(ctx, s.r, `SELECT b.encoding, b.data, b.created_at FROM sboms b JOIN images i ON i.id = b.image_id
		WHERE i.digest = ?`, digest).Scan(&enc, &data, tcol(&out.CreatedAt))
	if err != nil {
		return nil, s.wrapErr(op, err)
	}
	if enc != sbomEncoding {
		return nil, fmt.Errorf("%s: unknown encoding %q", op, enc)
	}
	raw, err := s.zdec.DecodeAll(data, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: decompress: %w", op, err)
	}
	var blob sbomBlob
	if err := json.Unmarshal(raw, &blob); err != nil {
		return nil, fmt.Errorf("%s: decode: %w", op, err)
	}
	out.OS, out.Packages, out.Tool = blob.OS, blob.Packages, blob.Tool
	return out, nil
}

// saveSBOM replaces the image's SBOM and its package index, unless the
// stored one is identical: an image digest is immutable, so a rescan
// usually finds the same inventory, and only its findings change.
func (s *Store) saveSBOM(ctx context.Context, q querier, imageID int64, sb encodedSBOM, pkgs []inventory.Package, at time.Time) error {
	var old []byte
	err := s.queryRow(ctx, q, `SELECT content_hash FROM sboms WHERE image_id = ?`, imageID).Scan(&old)
	if err == nil && bytes.Equal(old, sb.hash) {
		return nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read sbom: %w", err)
	}
	if _, err := s.exec(ctx, q, `INSERT INTO sboms (image_id, encoding, data, content_hash, package_count, created_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (image_id) DO UPDATE SET encoding = excluded.encoding, data = excluded.data,
			content_hash = excluded.content_hash, package_count = excluded.package_count, created_at = excluded.created_at`,
		imageID, sbomEncoding, sb.blob, sb.hash, len(pkgs), s.ts(at)); err != nil {
		return fmt.Errorf("save sbom: %w", err)
	}
	if _, err := s.exec(ctx, q, `DELETE FROM image_packages WHERE image_id = ?`, imageID); err != nil {
		return fmt.Errorf("clear package index: %w", err)
	}
	type key struct{ eco, name, ver string }
	seen := make(map[key]bool, len(pkgs))
	const cols = 6
	const batch = 200
	args := make([]any, 0, batch*cols)
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		_, err := s.exec(ctx, q, `INSERT INTO image_packages (image_id, ecosystem, name, version, type, purl) VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?), ", n), ", ")+` ON CONFLICT DO NOTHING`, args...)
		args, n = args[:0], 0
		return err
	}
	for _, p := range pkgs {
		k := key{p.Ecosystem, p.Name, p.Version}
		if p.Name == "" || seen[k] {
			continue
		}
		seen[k] = true
		args = append(args, imageID, p.Ecosystem, p.Name, p.Version, p.Type, p.PURL)
		n++
		if n == batch {
			if err := flush(); err != nil {
				return fmt.Errorf("index packages: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("index packages: %w", err)
	}
	return nil
}
