package export

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// Vendor and product as receivers see them (CEF header, OCSF metadata).
const (
	vendor  = "Bulwark"
	product = "Bulwark"
	// sdID is the RFC 5424 structured-data id. 32473 is IANA's example
	// enterprise number (RFC 5612), the documented choice for a project
	// without its own.
	sdID = "bulwark@32473"
)

// syslogSeverity maps an alert severity to an RFC 5424 severity.
func syslogSeverity(s alerts.Severity) int {
	switch s {
	case alerts.SeverityCritical:
		return 2 // critical
	case alerts.SeverityHigh:
		return 3 // error
	case alerts.SeverityMedium:
		return 4 // warning
	case alerts.SeverityLow:
		return 5 // notice
	}
	return 6 // informational
}

// cefSeverity maps an alert severity to CEF's 0-10 scale.
func cefSeverity(s alerts.Severity) int {
	switch s {
	case alerts.SeverityCritical:
		return 10
	case alerts.SeverityHigh:
		return 8
	case alerts.SeverityMedium:
		return 5
	case alerts.SeverityLow:
		return 3
	}
	return 1
}

// syslogHeader appends "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID ".
func syslogHeader(b []byte, r *Record, facility int, hostname, appName, msgID string) []byte {
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(facility*8+syslogSeverity(r.Severity)), 10)
	b = append(b, ">1 "...)
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, ' ')
	b = appendHeaderField(b, hostname, 255)
	b = append(b, ' ')
	b = appendHeaderField(b, appName, 48)
	b = append(b, " - "...)
	b = appendHeaderField(b, msgID, 32)
	return append(b, ' ')
}

// appendHeaderField writes a header field: printable US-ASCII without
// spaces, at most max characters, "-" when empty (RFC 5424 §6.2).
func appendHeaderField(b []byte, v string, max int) []byte {
	n := 0
	for i := 0; i < len(v) && n < max; i++ {
		c := v[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		b = append(b, c)
		n++
	}
	if n == 0 {
		b = append(b, '-')
	}
	return b
}

// sdParams are the structured-data parameters of a record, in order (an
// array: no allocation per record).
func sdParams(r *Record) [16][2]string {
	return [16][2]string{
		{"id", r.ID}, {"kind", r.Kind}, {"source", string(r.Source)}, {"rule", r.Rule}, {"severity", r.Severity.String()},
		{"mitreTactic", r.MitreTactic}, {"mitreTechnique", r.MitreTechnique}, {"cluster", r.Cluster},
		{"namespace", r.Namespace}, {"pod", r.Pod}, {"container", r.Container}, {"image", r.Image},
		{"imageDigest", r.ImageDigest}, {"node", r.Node}, {"workload", r.Workload}, {"fingerprint", r.Fingerprint()},
	}
}

// appendSD writes the structured-data element; values longer than
// maxValue bytes are cut (at a character boundary).
func appendSD(b []byte, r *Record, maxValue int) []byte {
	b = append(b, '[')
	b = append(b, sdID...)
	for _, p := range sdParams(r) {
		if p[1] == "" {
			continue
		}
		b = append(b, ' ')
		b = append(b, p[0]...)
		b = append(b, `="`...)
		b = appendSDValue(b, cut(p[1], maxValue))
		b = append(b, '"')
	}
	return append(b, ']')
}

// appendSDValue escapes '"', '\' and ']' (RFC 5424 §6.3.3). Runs
// without them are copied whole.
func appendSDValue(b []byte, v string) []byte {
	start := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"', '\\', ']':
			b = append(append(b, v[start:i]...), '\\', c)
			start = i + 1
		}
	}
	return append(b, v[start:]...)
}

// cut shortens s to at most n bytes without splitting a character.
func cut(s string, n int) string {
	if n <= 0 || len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// oneLine replaces line breaks (a record must stay one syslog message).
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// AppendRFC5424 appends one RFC 5424 message (without transport framing):
// the alert's fields as structured data and its title as the message.
// With max > 0 the message is kept within max bytes (UDP datagrams): first
// the title is shortened, then the structured-data values, and as a last
// resort the message is cut.
func AppendRFC5424(b []byte, r *Record, facility int, hostname, appName string, max int) []byte {
	start := len(b)
	b = syslogHeader(b, r, facility, hostname, appName, r.Kind)
	head := len(b)
	b = appendSD(b, r, 0)
	b = append(b, ' ')
	b = append(b, oneLine(r.Title)...)
	if max <= 0 || len(b)-start <= max {
		return b
	}
	// Too long: keep the header, shorten the structured data's values,
	// then fit the title into what is left.
	b = b[:head]
	b = appendSD(b, r, 64)
	if room := max - (len(b) - start) - 1; room > 0 {
		b = append(b, ' ')
		b = append(b, cut(oneLine(r.Title), room)...)
	}
	if len(b)-start > max {
		b = b[:start+len(cut(string(b[start:]), max))]
	}
	return b
}

// AppendCEF appends one ArcSight Common Event Format line (CEF:0) —
// the payload syslog carries to most SIEMs.
func AppendCEF(b []byte, r *Record, version string) []byte {
	b = append(b, "CEF:0|"...)
	b = appendCEFHeader(b, vendor)
	b = append(b, '|')
	b = appendCEFHeader(b, product)
	b = append(b, '|')
	b = appendCEFHeader(b, version)
	b = append(b, '|')
	b = appendCEFHeader(b, r.Rule)
	b = append(b, '|')
	name := r.Title
	if name == "" {
		name = r.Rule
	}
	b = appendCEFHeader(b, cut(name, 512))
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(cefSeverity(r.Severity)), 10)
	b = append(b, '|')
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b = append(b, "rt="...)
	b = strconv.AppendInt(b, t.UnixMilli(), 10)
	ext := func(k, v string) {
		if v == "" {
			return
		}
		b = append(b, ' ')
		b = append(b, k...)
		b = append(b, '=')
		b = appendCEFExt(b, v)
	}
	ext("externalId", r.ID)
	ext("cat", string(r.Source))
	ext("msg", r.Title)
	ext("dvchost", r.Node)
	ext("cs1Label", "rule")
	ext("cs1", r.Rule)
	if r.Namespace != "" {
		ext("cs2Label", "namespace")
		ext("cs2", r.Namespace)
	}
	if r.Pod != "" {
		ext("cs3Label", "pod")
		ext("cs3", r.Pod)
	}
	if r.Image != "" || r.ImageDigest != "" {
		ext("cs4Label", "image")
		b = append(b, " cs4="...)
		b = appendCEFExt(b, r.Image)
		if r.ImageDigest != "" {
			b = append(b, '@')
			b = appendCEFExt(b, r.ImageDigest)
		}
	}
	if r.Cluster != "" {
		ext("cs5Label", "cluster")
		ext("cs5", r.Cluster)
	}
	if r.MitreTechnique != "" || r.MitreTactic != "" {
		ext("cs6Label", "mitre")
		b = append(b, " cs6="...)
		b = appendCEFExt(b, r.MitreTactic)
		if r.MitreTactic != "" && r.MitreTechnique != "" {
			b = append(b, ' ')
		}
		b = appendCEFExt(b, r.MitreTechnique)
	}
	ext("dproc", r.Container)
	ext("deviceExternalId", r.Workload)
	ext("fileHash", r.Fingerprint())
	return b
}

// appendCEFHeader escapes '|' and '\' (and removes line breaks) in a
// header field. Runs without special characters are copied whole.
func appendCEFHeader(b []byte, v string) []byte {
	start := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '|', '\\':
			b = append(append(b, v[start:i]...), '\\', c)
			start = i + 1
		case '\r', '\n':
			b = append(append(b, v[start:i]...), ' ')
			start = i + 1
		}
	}
	return append(b, v[start:]...)
}

// appendCEFExt escapes '=', '\' and line breaks in an extension value.
// Runs without special characters are copied whole.
func appendCEFExt(b []byte, v string) []byte {
	start := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '=', '\\':
			b = append(append(b, v[start:i]...), '\\', c)
			start = i + 1
		case '\n':
			b = append(append(b, v[start:i]...), `\n`...)
			start = i + 1
		case '\r':
			b = append(append(b, v[start:i]...), `\r`...)
			start = i + 1
		}
	}
	return append(b, v[start:]...)
}

// AppendCEFSyslog is a CEF line carried in an RFC 5424 message, kept
// within max bytes when max > 0 (the extension is cut, never the header;
// a cut never leaves half an escape).
func AppendCEFSyslog(b []byte, r *Record, facility int, hostname, appName, version string, max int) []byte {
	start := len(b)
	b = syslogHeader(b, r, facility, hostname, appName, "CEF")
	b = append(b, "- "...) // no structured data
	b = AppendCEF(b, r, version)
	if max > 0 && len(b)-start > max {
		s := cut(string(b[start:]), max)
		// Do not end inside an escape: drop an odd run of backslashes.
		n := 0
		for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
			n++
		}
		if n%2 == 1 {
			s = s[:len(s)-1]
		}
		b = b[:start+len(s)]
	}
	return b
}

// OCSF Detection Finding (class 2004, category 2 Findings), schema 1.1.
type ocsfFinding struct {
	ActivityID   int             `json:"activity_id"`
	ActivityName string          `json:"activity_name"`
	CategoryUID  int             `json:"category_uid"`
	CategoryName string          `json:"category_name"`
	ClassUID     int             `json:"class_uid"`
	ClassName    string          `json:"class_name"`
	TypeUID      int             `json:"type_uid"`
	TypeName     string          `json:"type_name"`
	SeverityID   int             `json:"severity_id"`
	Severity     string          `json:"severity"`
	StatusID     int             `json:"status_id"`
	Status       string          `json:"status"`
	Time         int64           `json:"time"`
	Message      string          `json:"message,omitempty"`
	Metadata     ocsfMetadata    `json:"metadata"`
	FindingInfo  ocsfFindingInfo `json:"finding_info"`
	Resources    []ocsfResource  `json:"resources,omitempty"`
	Evidences    []ocsfEvidence  `json:"evidences,omitempty"`
	Unmapped     map[string]any  `json:"unmapped,omitempty"`
}

type ocsfMetadata struct {
	Version    string      `json:"version"`
	UID        string      `json:"uid"`
	Product    ocsfProduct `json:"product"`
	LoggedTime int64       `json:"logged_time,omitempty"`
}

type ocsfProduct struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
	Version    string `json:"version,omitempty"`
}

type ocsfFindingInfo struct {
	UID       string        `json:"uid"`
	Title     string        `json:"title"`
	Types     []string      `json:"types,omitempty"`
	Analytic  *ocsfAnalytic `json:"analytic,omitempty"`
	Attacks   []ocsfAttack  `json:"attacks,omitempty"`
	FirstSeen int64         `json:"first_seen_time,omitempty"`
}

type ocsfAnalytic struct {
	Name    string `json:"name"`
	TypeID  int    `json:"type_id"`
	Type    string `json:"type"`
	Version string `json:"version,omitempty"`
}

type ocsfAttack struct {
	Tactic    *ocsfUID `json:"tactic,omitempty"`
	Technique *ocsfUID `json:"technique,omitempty"`
	Version   string   `json:"version"`
}

type ocsfUID struct {
	UID string `json:"uid"`
}

type ocsfResource struct {
	Type      string `json:"type"`
	Name      string `json:"name,omitempty"`
	UID       string `json:"uid,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

type ocsfEvidence struct {
	Data json.RawMessage `json:"data,omitempty"`
}

// OCSF maps a record to an OCSF Detection Finding (class_uid 2004).
func OCSF(r *Record, version string) any {
	sevID := map[alerts.Severity]int{alerts.SeverityInfo: 1, alerts.SeverityLow: 2, alerts.SeverityMedium: 3,
		alerts.SeverityHigh: 4, alerts.SeverityCritical: 5}[r.Severity]
	f := ocsfFinding{
		ActivityID: 1, ActivityName: "Create", CategoryUID: 2, CategoryName: "Findings",
		ClassUID: 2004, ClassName: "Detection Finding", TypeUID: 200401, TypeName: "Detection Finding: Create",
		SeverityID: sevID, Severity: strings.ToUpper(r.Severity.String()[:1]) + r.Severity.String()[1:],
		StatusID: 1, Status: "New", Time: r.Time.UnixMilli(), Message: r.Title,
		Metadata: ocsfMetadata{Version: "1.1.0", UID: r.ID, Product: ocsfProduct{Name: product, VendorName: vendor, Version: version}},
		FindingInfo: ocsfFindingInfo{UID: r.ID, Title: r.Title, Types: []string{r.Kind, string(r.Source)},
			Analytic: &ocsfAnalytic{Name: r.Rule, TypeID: 1, Type: "Rule", Version: r.RuleVersion}},
		Unmapped: map[string]any{"fingerprint": r.Fingerprint()},
	}
	if r.Severity == alerts.SeverityInfo {
		f.Severity = "Informational"
	}
	if r.MitreTactic != "" || r.MitreTechnique != "" {
		a := ocsfAttack{Version: "v14"}
		if r.MitreTactic != "" {
			a.Tactic = &ocsfUID{r.MitreTactic}
		}
		if r.MitreTechnique != "" {
			a.Technique = &ocsfUID{r.MitreTechnique}
		}
		f.FindingInfo.Attacks = []ocsfAttack{a}
	}
	add := func(typ, name, uid, ns string) {
		if name != "" || uid != "" {
			f.Resources = append(f.Resources, ocsfResource{Type: typ, Name: name, UID: uid, Namespace: ns})
		}
	}
	add("kubernetes.cluster", r.Cluster, "", "")
	add("kubernetes.workload", r.Workload, "", r.Namespace)
	add("kubernetes.pod", r.Pod, "", r.Namespace)
	add("container", r.Container, r.ContainerID, r.Namespace)
	add("container.image", r.Image, r.ImageDigest, "")
	add("kubernetes.node", r.Node, "", "")
	if len(r.Evidence) > 0 && string(r.Evidence) != "null" {
		f.Evidences = []ocsfEvidence{{Data: r.Evidence}}
	}
	return f
}
