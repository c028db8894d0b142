package server

import (
	"fmt"
	"net/http"
)

// expireSuppression ends a suppression now (the console's "Expire now"):
// unlike DELETE it stays listed, expired, with its hits. The alerts it
// holds stay hidden until released; the audit entry says how many.
func (s *Server) expireSuppression(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("suppression/%d", id), nil)
	if err := s.st.ExpireSuppression(c.r.Context(), id); err != nil {
		return err
	}
	sp, err := s.st.GetSuppression(c.r.Context(), id)
	if err != nil {
		return err
	}
	if n, err := s.st.SuppressedOpenCount(c.r.Context(), id); err == nil {
		c.audit(fmt.Sprintf("suppression/%d", id), map[string]any{"still_suppressed_open_alerts": n})
	}
	return c.JSON(http.StatusOK, toSuppressionJSON(sp))
}
