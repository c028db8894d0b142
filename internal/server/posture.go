package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/bulwark-security/bulwark/internal/export"
	"github.com/bulwark-security/bulwark/internal/posture"
	"github.com/bulwark-security/bulwark/internal/store"
)

// Posture reports (issue 6): `bulwark posture cluster|manifests|node
// --server` posts its report; the API lists them over time.

var rolesPosturePost = []store.Role{store.RoleAdmin, store.RoleCI, store.RoleAgent}

// postureUpload is the body of POST /api/v1/posture/reports.
type postureUpload struct {
	Target string          `json:"target"`
	Name   string          `json:"name"`
	Report json.RawMessage `json:"report"`
}

// maxPostureResults bounds one report (a 10,000-object cluster is about
// 300,000 results).
const maxPostureResults = 2_000_000

func (s *Server) postPostureReport(c *call) error {
	var up postureUpload
	if err := c.decode(&up, s.cfg.MaxUploadBytes, true); err != nil {
		return err
	}
	if len(up.Name) > 253 {
		return badRequest("name longer than 253 characters")
	}
	var rep posture.Report
	if err := json.Unmarshal(up.Report, &rep); err != nil {
		return badRequest("report: %v", err)
	}
	if rep.Catalogue == "" || len(rep.Controls) == 0 {
		return badRequest("report: no catalogueVersion or controls (is this a posture report?)")
	}
	if len(rep.Results) > maxPostureResults {
		return badRequest("report: %d results (limit %d)", len(rep.Results), maxPostureResults)
	}
	r := store.PostureReport{Target: up.Target, Name: up.Name, Catalogue: rep.Catalogue, UploadedBy: c.actor(),
		Objects: len(rep.Objects), Report: up.Report, Score: 100}
	for i := range rep.Results {
		res := &rep.Results[i]
		if res.Object < 0 || res.Object >= len(rep.Objects) {
			return badRequest("report: result %d names object %d of %d", i, res.Object, len(rep.Objects))
		}
		switch res.Status {
		case posture.StatusPass:
			r.Passed++
		case posture.StatusFail:
			r.Failed++
		case posture.StatusSkipped:
			r.Skipped++
		}
	}
	for _, f := range rep.Frameworks {
		if f.Name == posture.FrameworkAll {
			r.Score = f.Score
		}
	}
	var err error
	if r.Summary, err = json.Marshal(postureSummary{Frameworks: rep.Frameworks, Namespaces: rep.Namespaces}); err != nil {
		return err
	}
	var diff export.PostureDiff
	exports, err := s.postureExports(c.r.Context(), &up, &rep, &diff)
	if err != nil {
		return err
	}
	saved, err := s.st.SavePostureReportExporting(c.r.Context(), r, exports)
	if err != nil {
		return err
	}
	c.audit("posture/"+up.Target+"/"+up.Name, map[string]any{"id": saved.ID, "objects": r.Objects, "failed": r.Failed, "score": r.Score,
		"exported_new_failures": diff.Exported, "new_failures": diff.NewFailures, "resolved": diff.Resolved})
	return c.JSON(http.StatusCreated, toPostureReport(saved))
}

// postureExports returns what makes a report's export records (see
// export.PostureItems, which fills diff) when some enabled export takes
// kind posture, else nil: then nothing is compared (the previous report of
// a large cluster is megabytes to read). The report is compared with the
// newest stored one of the same target and name; two uploads of one scope
// at once may both be compared with the same previous report.
func (s *Server) postureExports(ctx context.Context, up *postureUpload, rep *posture.Report, diff *export.PostureDiff) (func(int64, time.Time) ([]store.ExportItem, error), error) {
	if take, err := s.st.ExportsTake(ctx, store.ExportKindPosture); err != nil || !take {
		return nil, err
	}
	var prev *posture.Report
	switch last, err := s.st.LatestPostureReport(ctx, up.Target, up.Name); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		prev = &posture.Report{}
		if err := json.Unmarshal(last.Report, prev); err != nil {
			// A stored report this version cannot read: every failure
			// counts as new rather than none.
			s.log.Warn("posture export: previous report unreadable, its failures are not subtracted", "report", last.ID, "err", err)
			prev = nil
		}
	}
	return func(id int64, at time.Time) ([]store.ExportItem, error) {
		items, d, err := export.PostureItems(rep, prev, export.PostureScope{ReportID: id, At: at, Target: up.Target, Name: up.Name})
		*diff = d
		return items, err
	}, nil
}

type postureSummary struct {
	Frameworks []posture.Score `json:"frameworks"`
	Namespaces []posture.Score `json:"namespaces"`
}

type postureReportJSON struct {
	ID         int64           `json:"id"`
	Target     string          `json:"target"`
	Name       string          `json:"name"`
	Catalogue  string          `json:"catalogueVersion"`
	UploadedBy string          `json:"uploadedBy"`
	CreatedAt  time.Time       `json:"createdAt"`
	Score      float64         `json:"score"`
	Objects    int             `json:"objects"`
	Passed     int             `json:"passed"`
	Failed     int             `json:"failed"`
	Skipped    int             `json:"skipped"`
	Summary    json.RawMessage `json:"summary"`
	Report     json.RawMessage `json:"report,omitempty"`
}

func toPostureReport(r *store.PostureReport) postureReportJSON {
	return postureReportJSON{r.ID, r.Target, r.Name, r.Catalogue, r.UploadedBy, r.CreatedAt, r.Score, r.Objects, r.Passed,
		r.Failed, r.Skipped, r.Summary, r.Report}
}

func (s *Server) listPostureReports(c *call) error {
	return listPage(c, func(c *call) (store.PostureFilter, error) {
		q := c.r.URL.Query()
		f := store.PostureFilter{Target: q.Get("target"), Name: q.Get("name")}
		var err error
		f.Since, err = c.timeParam("since")
		return f, err
	}, s.st.ListPostureReports, toPostureReport)
}

func (s *Server) getPostureReport(c *call) error {
	return getByID(c, s.st.GetPostureReport, toPostureReport)
}
