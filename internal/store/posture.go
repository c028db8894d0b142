package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// PostureReport is one posture evaluation as stored (issue 6). The columns
// are what lists and trends read; Report is the whole posture.Report JSON,
// returned by GetPostureReport only (lists leave it nil).
type PostureReport struct {
	ID         int64
	Target     string // cluster, manifests, node
	Name       string // cluster context, host name, or what the uploader chose
	Catalogue  string
	UploadedBy string
	CreatedAt  time.Time
	Score      float64 // the "All controls" score, 0-100
	Objects    int
	Passed     int
	Failed     int
	Skipped    int
	// Summary holds the per-framework and per-namespace scores (small
	// JSON, kept uncompressed so lists can show it).
	Summary json.RawMessage
	Report  json.RawMessage
}

const postureEncoding = "zstd+json/v1"

var postureTargets = map[string]bool{"cluster": true, "manifests": true, "node": true}

// SavePostureReport stores a report and returns it with its id and time.
func (s *Store) SavePostureReport(ctx context.Context, r PostureReport) (*PostureReport, error) {
	return s.SavePostureReportExporting(ctx, r, nil)
}

// SavePostureReportExporting stores a report as SavePostureReport does
// and, when exports is not nil, queues the export records it makes from
// the stored report's id and time in the same transaction: the report is
// stored if and only if its records are in the export log (each enabled
// export's filter then takes what it selects, as for alerts).
func (s *Store) SavePostureReportExporting(ctx context.Context, r PostureReport, exports func(id int64, at time.Time) ([]ExportItem, error)) (*PostureReport, error) {
	switch {
	case !postureTargets[r.Target]:
		return nil, fmt.Errorf("save posture report: %w", invalid("target %q (want cluster, manifests or node)", r.Target))
	case !json.Valid(r.Report):
		return nil, fmt.Errorf("save posture report: %w", invalid("report is not JSON"))
	case len(r.Summary) == 0 || !json.Valid(r.Summary):
		return nil, fmt.Errorf("save posture report: %w", invalid("summary is not JSON"))
	}
	r.CreatedAt = s.now()
	blob := s.zenc.EncodeAll(r.Report, make([]byte, 0, len(r.Report)/8))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := s.queryRow(ctx, tx, `INSERT INTO posture_reports (target, name, catalogue_version, uploaded_by, created_at, score,
			objects, passed, failed, skipped, summary, report_encoding, report) VALUES (`+placeholders(13)+`) RETURNING id`,
			r.Target, r.Name, r.Catalogue, r.UploadedBy, s.ts(r.CreatedAt), r.Score, r.Objects, r.Passed, r.Failed, r.Skipped,
			string(r.Summary), postureEncoding, blob).Scan(&r.ID)
		if err != nil || exports == nil {
			return err
		}
		items, err := exports(r.ID, r.CreatedAt)
		if err != nil {
			return err
		}
		_, err = s.enqueueExports(ctx, tx, items, false)
		return err
	})
	if err != nil {
		return nil, s.wrapErr("save posture report", err)
	}
	return &r, nil
}

// LatestPostureReport returns the newest report of a target and name with
// its full JSON (ErrNotFound when there is none): what a new report of the
// same scope is compared with.
func (s *Store) LatestPostureReport(ctx context.Context, target, name string) (*PostureReport, error) {
	var id int64
	err := s.queryRow(ctx, s.r, `SELECT id FROM posture_reports WHERE target = ? AND name = ? ORDER BY created_at DESC, id DESC LIMIT 1`,
		target, name).Scan(&id)
	if err != nil {
		return nil, s.wrapErr("latest posture report "+target+"/"+name, err)
	}
	return s.GetPostureReport(ctx, id)
}

const postureCols = `id, target, name, catalogue_version, uploaded_by, created_at, score, objects, passed, failed, skipped, summary`

func scanPosture(sc scanner, extra ...any) (*PostureReport, error) {
	var r PostureReport
	var summary string
	dest := append([]any{&r.ID, &r.Target, &r.Name, &r.Catalogue, &r.UploadedBy, tcol(&r.CreatedAt), &r.Score, &r.Objects,
		&r.Passed, &r.Failed, &r.Skipped, &summary}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	r.Summary = json.RawMessage(summary)
	return &r, nil
}

// GetPostureReport returns one report with its full JSON.
func (s *Store) GetPostureReport(ctx context.Context, id int64) (*PostureReport, error) {
	op := fmt.Sprintf("get posture report %d", id)
	var enc string
	var blob []byte
	r, err := scanPosture(s.queryRow(ctx, s.r, `SELECT `+postureCols+`, report_encoding, report FROM posture_reports WHERE id = ?`, id), &enc, &blob)
	if err != nil {
		return nil, s.wrapErr(op, err)
	}
	if enc != postureEncoding {
		return nil, fmt.Errorf("%s: unknown encoding %q", op, enc)
	}
	if r.Report, err = s.zdec.DecodeAll(blob, nil); err != nil {
		return nil, fmt.Errorf("%s: decompress: %w", op, err)
	}
	return r, nil
}

// PostureFilter selects reports; empty fields match all.
type PostureFilter struct {
	Target, Name string
	Since        time.Time
}

var postureSorts = map[string]string{"created": "created_at", "score": "score", "failed": "failed", "name": "name"}

// ListPostureReports pages through reports, newest first by default.
// Sort keys: created, score, failed, name.
func (s *Store) ListPostureReports(ctx context.Context, f PostureFilter, p Page) ([]PostureReport, int, error) {
	order, err := p.orderBy(postureSorts, "-created", "id")
	if err != nil {
		return nil, 0, fmt.Errorf("list posture reports: %w", err)
	}
	var w where
	if f.Target != "" {
		if !postureTargets[f.Target] {
			return nil, 0, fmt.Errorf("list posture reports: %w", invalid("target %q (want cluster, manifests or node)", f.Target))
		}
		w.add(`target = ?`, f.Target)
	}
	if f.Name != "" {
		w.add(`name = ?`, f.Name)
	}
	if !f.Since.IsZero() {
		w.add(`created_at >= ?`, s.ts(f.Since))
	}
	var out []PostureReport
	total, err := s.list(ctx, postureCols, "posture_reports", &w, order, p, func(sc scanner) error {
		r, err := scanPosture(sc)
		if err == nil {
			out = append(out, *r)
		}
		return err
	})
	if err != nil {
		return nil, 0, s.wrapErr("list posture reports", err)
	}
	return out, total, nil
}
