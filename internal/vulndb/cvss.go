package vulndb

import (
	"fmt"
	"math"
	"strings"

	gocvss20 "github.com/pandatix/go-cvss/20"
	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"
)

// ScoreVector scores a CVSS vector of any version (2.0, 3.0, 3.1, 4.0),
// telling the version from the vector's prefix ("CVSS:3.1/", "CVSS:4.0/";
// v2 vectors have none, sometimes wrapped in parentheses).
func ScoreVector(vector string) (CVSS, error) {
	v := strings.TrimSpace(vector)
	switch {
	case strings.HasPrefix(v, "CVSS:4.0/"):
		c, err := gocvss40.ParseVector(v)
		if err != nil {
			return CVSS{}, fmt.Errorf("parse CVSS 4.0 vector %q: %w", truncate(v), err)
		}
		return CVSS{Version: "4.0", Vector: v, Score: c.Score()}, nil
	case strings.HasPrefix(v, "CVSS:3.1/"):
		c, err := gocvss31.ParseVector(v)
		if err != nil {
			return CVSS{}, fmt.Errorf("parse CVSS 3.1 vector %q: %w", truncate(v), err)
		}
		return CVSS{Version: "3.1", Vector: v, Score: c.BaseScore()}, nil
	case strings.HasPrefix(v, "CVSS:3.0/"):
		c, err := gocvss30.ParseVector(v)
		if err != nil {
			return CVSS{}, fmt.Errorf("parse CVSS 3.0 vector %q: %w", truncate(v), err)
		}
		return CVSS{Version: "3.0", Vector: v, Score: c.BaseScore()}, nil
	}
	v2 := strings.TrimPrefix(strings.TrimSuffix(strings.TrimPrefix(v, "("), ")"), "CVSS:2.0/")
	c, err := gocvss20.ParseVector(v2)
	if err != nil {
		return CVSS{}, fmt.Errorf("parse CVSS vector %q: %w", truncate(v), err)
	}
	return CVSS{Version: "2.0", Vector: v2, Score: c.BaseScore()}, nil
}

// scoreOSVSeverity scores an OSV severity[] entry of a CVSS type.
func scoreOSVSeverity(s osvSeverity, source string) (CVSS, bool) {
	switch s.Type {
	case "CVSS_V2", "CVSS_V3", "CVSS_V4":
	default:
		return CVSS{}, false
	}
	c, err := ScoreVector(s.Score)
	if err != nil || math.IsNaN(c.Score) {
		return CVSS{}, false
	}
	c.Source = source
	return c, true
}

// maxScore is the highest score among cs (0 when empty).
func maxScore(cs []CVSS) float64 {
	m := 0.0
	for _, c := range cs {
		m = max(m, c.Score)
	}
	return m
}
