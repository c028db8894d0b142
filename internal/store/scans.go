package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/scan"
)

// ScanStatus is the outcome of a scan.
type ScanStatus string

const (
	ScanSucceeded ScanStatus = "succeeded"
	ScanFailed    ScanStatus = "failed"
)

// ScanRecord is one entry of the scan history.
type ScanRecord struct {
	ID          int64
	ImageDigest string
	TargetKind  string
	TargetName  string
	Status      ScanStatus
	Error       string
	// TriggeredBy says who or what asked: "ci:<token name>",
	// "webhook:<registry>", "sweep:<registry>", "user:<name>".
	TriggeredBy string
	ToolName    string
	ToolVersion string
	// DBBuilt identifies the vulnerability database version used.
	DBBuilt       time.Time
	StartedAt     time.Time
	FinishedAt    time.Time
	Duration      time.Duration
	PackageCount  int
	FindingCount  int
	NewFindings   int
	FixedFindings int
	CreatedAt     time.Time
}

// ScanMeta is what SaveScan needs besides the result.
type ScanMeta struct {
	TriggeredBy string
	// Refs are extra references to record for the image (the repository a
	// webhook named); the result's RepoTags are recorded anyway.
	Refs []ImageRef
	// Job, when set, is completed in the same transaction: the result is
	// stored if and only if the job is marked done, and a lease that was
	// lost (expired and claimed again) rolls the save back with
	// ErrLeaseLost.
	Job *Lease
}

// ScanSaved is what SaveScan stored.
type ScanSaved struct {
	ScanID  int64
	ImageID int64
	Diff    *FindingsDiff
}

// SaveScan stores a whole image scan in one transaction: the image and its
// references, the SBOM (compressed) and package index, the findings — the
// image's current findings are replaced and the changes recorded as
// events — and a scan record.
func (s *Store) SaveScan(ctx context.Context, res *scan.Result, meta ScanMeta) (*ScanSaved, error) {
	if res == nil {
		return nil, fmt.Errorf("save scan: %w", invalid("nil result"))
	}
	digest := res.Target.Digest
	op := "save scan of " + digest
	if err := validDigest(digest); err != nil {
		return nil, fmt.Errorf("save scan of %q: %w (only image scans are stored)", res.Target.Name, err)
	}
	fs, err := flattenFindings(res.Findings)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	refs := append([]ImageRef(nil), meta.Refs...)
	for _, t := range res.Target.RepoTags {
		if r, err := ParseImageRef(t); err == nil {
			refs = append(refs, r)
		}
	}
	sb, err := s.encodeSBOM(res)
	if err != nil {
		return nil, fmt.Errorf("%s: encode sbom: %w", op, err)
	}
	osName := ""
	if res.OS != nil {
		osName = strings.TrimSpace(res.OS.ID + " " + res.OS.VersionID)
	}
	now := s.now()
	im := &Image{Digest: digest, ConfigDigest: res.Target.ImageID, Platform: res.Target.Platform, OS: osName,
		Size: res.Target.Size, Layers: res.Target.Layers}
	out := &ScanSaved{}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		id, err := s.upsertImage(ctx, tx, im, now)
		if err != nil {
			return fmt.Errorf("save image: %w", err)
		}
		out.ImageID = id
		if err := s.upsertRefs(ctx, tx, id, refs, now); err != nil {
			return err
		}
		if err := s.saveSBOM(ctx, tx, id, sb, res.Packages, now); err != nil {
			return err
		}
		// The scan record is inserted first so events can point at it;
		// its counts are filled in once the diff is known.
		rec := scanRecordFromResult(res, meta.TriggeredBy)
		out.ScanID, err = s.insertScan(ctx, tx, id, rec, now)
		if err != nil {
			return err
		}
		out.Diff, err = s.replaceFindings(ctx, tx, id, digest, fs, SourceScan, out.ScanID)
		if err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, `UPDATE scans SET finding_count = ?, new_findings = ?, fixed_findings = ? WHERE id = ?`,
			len(fs), len(out.Diff.New), len(out.Diff.Fixed), out.ScanID); err != nil {
			return fmt.Errorf("update scan record: %w", err)
		}
		if _, err := s.exec(ctx, tx, `UPDATE images SET last_scanned_at = ?, package_count = ? WHERE id = ?`,
			s.ts(now), len(res.Packages), id); err != nil {
			return fmt.Errorf("update image: %w", err)
		}
		if meta.Job != nil {
			return s.completeJob(ctx, tx, *meta.Job)
		}
		return nil
	})
	if err != nil {
		return nil, s.wrapErr(op, err)
	}
	return out, nil
}

func scanRecordFromResult(res *scan.Result, by string) ScanRecord {
	rec := ScanRecord{
		ImageDigest:  res.Target.Digest,
		TargetKind:   res.Target.Kind,
		TargetName:   res.Target.Name,
		Status:       ScanSucceeded,
		TriggeredBy:  by,
		ToolName:     res.Tool.Name,
		ToolVersion:  res.Tool.Version,
		StartedAt:    res.StartedAt,
		FinishedAt:   res.FinishedAt,
		PackageCount: len(res.Packages),
	}
	if !res.StartedAt.IsZero() && res.FinishedAt.After(res.StartedAt) {
		rec.Duration = res.FinishedAt.Sub(res.StartedAt)
	}
	if res.DB != nil {
		rec.DBBuilt = res.DB.Built
	}
	return rec
}

func (s *Store) insertScan(ctx context.Context, q querier, imageID int64, r ScanRecord, now time.Time) (int64, error) {
	var img any
	if imageID != 0 {
		img = imageID
	}
	var id int64
	err := s.queryRow(ctx, q, `INSERT INTO scans (image_id, digest, target_kind, target_name, status, error, triggered_by,
		tool_name, tool_version, db_built, started_at, finished_at, duration_ms, package_count, finding_count,
		new_findings, fixed_findings, created_at) VALUES (`+placeholders(18)+`) RETURNING id`,
		img, r.ImageDigest, r.TargetKind, r.TargetName, string(r.Status), r.Error, r.TriggeredBy, r.ToolName, r.ToolVersion,
		s.ts(r.DBBuilt), s.ts(r.StartedAt), s.ts(r.FinishedAt), r.Duration.Milliseconds(), r.PackageCount, r.FindingCount,
		r.NewFindings, r.FixedFindings, s.ts(now)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert scan record: %w", err)
	}
	return id, nil
}

// RecordScan adds a scan record without a result: a failed scan (image
// not pullable, scanner error). Status must be set.
func (s *Store) RecordScan(ctx context.Context, r ScanRecord) (int64, error) {
	if r.Status != ScanSucceeded && r.Status != ScanFailed {
		return 0, fmt.Errorf("record scan: %w", invalid("status %q (want succeeded or failed)", r.Status))
	}
	if r.ImageDigest != "" {
		if err := validDigest(r.ImageDigest); err != nil {
			return 0, fmt.Errorf("record scan: %w", err)
		}
	}
	var id int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var imageID int64
		if r.ImageDigest != "" {
			err := s.queryRow(ctx, tx, `SELECT id FROM images WHERE digest = ?`, r.ImageDigest).Scan(&imageID)
			if err != nil && err != sql.ErrNoRows {
				return err
			}
		}
		var err error
		id, err = s.insertScan(ctx, tx, imageID, r, s.now())
		return err
	})
	if err != nil {
		return 0, s.wrapErr("record scan", err)
	}
	return id, nil
}

// ScanFilter narrows ListScans.
type ScanFilter struct {
	ImageDigest string
	Status      ScanStatus
	TriggeredBy string
	Since       time.Time
}

var scanSorts = map[string]string{"created": "created_at", "duration": "duration_ms", "findings": "finding_count", "id": "id"}

const scanCols = `id, digest, target_kind, target_name, status, error, triggered_by, tool_name, tool_version, db_built,
	started_at, finished_at, duration_ms, package_count, finding_count, new_findings, fixed_findings, created_at`

func scanScanRecord(sc scanner) (*ScanRecord, error) {
	var r ScanRecord
	var status string
	var ms int64
	if err := sc.Scan(&r.ID, &r.ImageDigest, &r.TargetKind, &r.TargetName, &status, &r.Error, &r.TriggeredBy, &r.ToolName,
		&r.ToolVersion, tcol(&r.DBBuilt), tcol(&r.StartedAt), tcol(&r.FinishedAt), &ms, &r.PackageCount, &r.FindingCount,
		&r.NewFindings, &r.FixedFindings, tcol(&r.CreatedAt)); err != nil {
		return nil, err
	}
	r.Status, r.Duration = ScanStatus(status), time.Duration(ms)*time.Millisecond
	return &r, nil
}

// GetScan returns one scan record.
func (s *Store) GetScan(ctx context.Context, id int64) (*ScanRecord, error) {
	r, err := scanScanRecord(s.queryRow(ctx, s.r, `SELECT `+scanCols+` FROM scans WHERE id = ?`, id))
	if err != nil {
		return nil, s.wrapErr(fmt.Sprintf("get scan %d", id), err)
	}
	return r, nil
}

// ListScans returns a page of the scan history. Sort keys: created
// (default -created), duration, findings, id.
func (s *Store) ListScans(ctx context.Context, f ScanFilter, p Page) ([]ScanRecord, int, error) {
	order, err := p.orderBy(scanSorts, "-created", "id")
	if err != nil {
		return nil, 0, fmt.Errorf("list scans: %w", err)
	}
	var w where
	if f.ImageDigest != "" {
		w.add(`digest = ?`, f.ImageDigest)
	}
	if f.Status != "" {
		if f.Status != ScanSucceeded && f.Status != ScanFailed {
			return nil, 0, fmt.Errorf("list scans: %w", invalid("status %q (want succeeded or failed)", f.Status))
		}
		w.add(`status = ?`, string(f.Status))
	}
	if f.TriggeredBy != "" {
		w.add(`triggered_by = ?`, f.TriggeredBy)
	}
	if !f.Since.IsZero() {
		w.add(`created_at >= ?`, s.ts(f.Since))
	}
	var out []ScanRecord
	total, err := s.list(ctx, scanCols, "scans", &w, order, p, func(sc scanner) error {
		r, err := scanScanRecord(sc)
		if err == nil {
			out = append(out, *r)
		}
		return err
	})
	if err != nil {
		return nil, 0, s.wrapErr("list scans", err)
	}
	return out, total, nil
}
