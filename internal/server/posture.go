package server

import (
	"encoding/json"
	"net/http"
	"time"

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
	saved, err := s.st.SavePostureReport(c.r.Context(), r)
	if err != nil {
		return err
	}
	c.audit("posture/"+up.Target+"/"+up.Name, map[string]any{"id": saved.ID, "objects": r.Objects, "failed": r.Failed, "score": r.Score})
	return c.JSON(http.StatusCreated, toPostureReport(saved))
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
