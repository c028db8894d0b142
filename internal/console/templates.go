package console

import (
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/report"

	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// pageTemplates are the page files; each is parsed with layout.html and
// partials.html into its own template set (each defines "content").
var pageTemplates = []string{"login", "overview", "images", "image", "vuln", "scans", "jobs", "registries", "account", "error", "alerts", "alert", "posture", "admission", "suppressions", "clusters", "policies", "policy", "users", "tokens", "audit"}

func (c *Console) funcs() template.FuncMap {
	return template.FuncMap{
		"url": c.url,
		// href builds one console path from a prefix and path segments
		// (escaped), so a template never concatenates URL pieces:
		// html/template judges a URL by its start, and a digest such as
		// "sha256:…" after a first piece reads like a scheme.
		"href": func(prefix string, parts ...any) string {
			var b strings.Builder
			b.WriteString(c.url(prefix))
			for _, p := range parts {
				s := fmt.Sprint(p)
				if strings.HasPrefix(s, "/") {
					b.WriteString(s) // a literal suffix from the template
				} else {
					b.WriteString(url.PathEscape(s))
				}
			}
			return b.String()
		},
		"asset": func(p string) string { return c.base + "/static/" + p + "?v=" + c.assetV },
		"ago":   func(t time.Time) string { return ago(c.now(), t) },
		"past":  func(t time.Time) bool { return !t.IsZero() && t.Before(c.now()) },
		"when":  when,
		"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"short": shortDigest,
		"bytes": humanBytes,
		"dur":   humanDuration,
		"age":   func(d time.Duration) string { return humanDuration(d) },
		"sevKey": func(s vulndb.Severity) string {
			return sevKeys[sevIndex(s)]
		},
		"sevLabel":    func(s vulndb.Severity) string { return sevLabels[sevIndex(s)] },
		"f":           fmtF,
		"f1":          func(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) },
		"epss":        func(x float64) string { return strconv.FormatFloat(x*100, 'f', 1, 64) + "%" },
		"num":         num,
		"statusLabel": statusLabel,
		"signed": func(n int) string {
			if n > 0 {
				return "+" + num(n)
			}
			return num(n)
		},
		"add":    func(a, b float64) float64 { return a + b },
		"sub":    func(a, b float64) float64 { return a - b },
		"half":   func(a float64) float64 { return a / 2 },
		"join":   strings.Join,
		"trunc":  truncate,
		"lower":  strings.ToLower,
		"plural": plural,
		"sevPairs": func(c sevCounts) []sevPair {
			out := make([]sevPair, len(c))
			for i := range c {
				out[i] = sevPair{Key: sevKeys[i], Label: sevLabels[i], Letter: sevLabels[i][:1], N: c[i]}
			}
			return out
		},
		"first": func(s []string) string {
			if len(s) == 0 {
				return ""
			}
			return s[0]
		},
		"dict": func(kv ...any) (map[string]any, error) {
			if len(kv)%2 != 0 {
				return nil, fmt.Errorf("dict: odd number of arguments")
			}
			m := make(map[string]any, len(kv)/2)
			for i := 0; i < len(kv); i += 2 {
				k, ok := kv[i].(string)
				if !ok {
					return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
				}
				m[k] = kv[i+1]
			}
			return m, nil
		},
	}
}

func (c *Console) parseTemplates() error {
	c.pages = map[string]*template.Template{}
	common, err := template.New("").Funcs(c.funcs()).ParseFS(templateFS, "templates/layout.html", "templates/partials.html")
	if err != nil {
		return fmt.Errorf("console: parse templates: %w", err)
	}
	for _, p := range pageTemplates {
		t, err := common.Clone()
		if err != nil {
			return fmt.Errorf("console: parse templates: %w", err)
		}
		b, err := fs.ReadFile(templateFS, "templates/"+p+".html")
		if err != nil {
			return fmt.Errorf("console: parse templates: %w", err)
		}
		if _, err := t.New(p + ".html").Parse(string(b)); err != nil {
			return fmt.Errorf("console: parse template %s: %w", p, err)
		}
		c.pages[p] = t
	}
	return nil
}

// sevPair is one severity's count for a template.
type sevPair struct {
	Key, Label, Letter string
	N                  int
}

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < -time.Minute {
		return "in " + humanDuration(-d)
	}
	// Within a minute either way (clocks of several replicas differ a
	// little) is "just now", never "in 291 ms".
	if d < time.Minute {
		return "just now"
	}
	return humanDuration(d) + " ago"
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + " min"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + " h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + " days"
}

func humanBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	f := float64(n)
	i := -1
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if f < 10 {
		return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) + " " + units[i]
	}
	return strconv.FormatFloat(math.Round(f), 'f', 0, 64) + " " + units[i]
}

// num formats an integer with thousands separators.
func num(n int) string { return report.Thousands(n) }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
