package store

import (
	"context"
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
	err := s.queryRow(ctx, s.w, `INSERT INTO posture_reports (target, name, catalogue_version, uploaded_by, created_at, score,
		objects, passed, failed, skipped, summary, report_encoding, report) VALUES (`+placeholders(13)+`) RETURNING id`,
		r.Target, r.Name, r.Catalogue, r.UploadedBy, s.ts(r.CreatedAt), r.Score, r.Objects, r.Passed, r.Failed, r.Skipped,
		string(r.Summary), postureEncoding, blob).Scan(&r.ID)
	if err != nil {
		return nil, s.wrapErr("save posture report", err)
	}
	return &r, nil
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
