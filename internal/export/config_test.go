package export

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/store"
)

const sampleYAML = `
server:
  listen: 127.0.0.1:8443
exports:
  - name: siem
    type: syslog
    network: tls
    address: siem.example.com:6514
    format: cef
    filter: {min_severity: high, sources: [sensor, audit], namespaces: ["prod-*"]}
  - name: lake
    type: kafka
    brokers: [kafka-1:9092, kafka-2:9092]
    topic: bulwark-alerts
    format: ocsf
    filter: {kinds: [alert, finding]}
  - name: chat
    type: slack
    enabled: false
    secrets: {webhook_url: "https://hooks.slack.com/services/T0/B0/X"}
`

func TestParseYAML(t *testing.T) {
	cs, err := ParseYAML([]byte(sampleYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 {
		t.Fatalf("%d exports", len(cs))
	}
	s := cs[0]
	if s.Network != "tls" || s.Format != FormatCEF || *s.Facility != 16 || s.AppName != "bulwark" ||
		s.MaxMessageBytes != 2048 || time.Duration(s.Timeout) != 10*time.Second || s.BatchSize != 100 {
		t.Errorf("syslog defaults: %+v", s)
	}
	f, err := s.storeFilter()
	if err != nil || f.MinSeverity != alerts.SeverityHigh {
		t.Errorf("filter: %+v %v", f, err)
	}
	if cs[2].IsEnabled() || cs[2].Secrets.WebhookURL == "" {
		t.Errorf("slack: %+v", cs[2])
	}
	// Secrets are split off for the store and come back with them.
	row, err := cs[2].ToStore(store.ExportOriginConfig)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(row.Config), "hooks.slack.com") {
		t.Fatalf("secret in the public config: %s", row.Config)
	}
	back, err := FromStore(&store.Export{Name: row.Name, Type: row.Type, Enabled: row.Enabled, Config: row.Config, Secrets: row.Secrets})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cs[2], *back); diff != "" {
		t.Errorf("round trip through the store (-want +got):\n%s", diff)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{`exports: [{name: a, type: carrier-pigeon}]`, `type "carrier-pigeon": want one of`},
		{`exports: [{name: "bad name", type: webhook, url: "https://x"}]`, `name "bad name"`},
		{`exports: [{name: a, type: webhook}]`, `url "": want an http(s) URL`},
		{`exports: [{name: a, type: webhook, url: "ftp://x"}]`, `want an http(s) URL`},
		{`exports: [{name: a, type: webhook, url: "https://x", format: cef}]`, `format "cef": webhook exports support json, ocsf`},
		{`exports: [{name: a, type: webhook, url: "https://x", colour: red}]`, `field colour not found`},
		{`exports: [{name: a, type: syslog, address: "nohost"}]`, `address "nohost": want host:port`},
		{`exports: [{name: a, type: syslog, address: "h:514", network: sctp}]`, `network "sctp"`},
		{`exports: [{name: a, type: syslog, address: "h:514", facility: 99}]`, `facility 99`},
		{`exports: [{name: a, type: syslog, address: "h:514", max_message_bytes: 100}]`, `max_message_bytes 100`},
		{`exports: [{name: a, type: splunk_hec, url: "https://s:8088"}]`, `secrets.token`},
		{`exports: [{name: a, type: elasticsearch, url: "https://e", index: "Bad*"}]`, `index "Bad*"`},
		{`exports: [{name: a, type: kafka, topic: t}]`, `brokers`},
		{`exports: [{name: a, type: kafka, brokers: [k:9092], topic: "a b"}]`, `topic "a b"`},
		{`exports: [{name: a, type: kafka, brokers: [k:9092], topic: t, sasl: plain}]`, `sasl needs username`},
		{`exports: [{name: a, type: slack}]`, `secrets.webhook_url`},
		{`exports: [{name: a, type: webhook, url: "https://x", filter: {min_severity: severe}}]`, `filter.min_severity "severe"`},
		{`exports: [{name: a, type: webhook, url: "https://x", filter: {sources: [kernel]}}]`, `filter.sources: "kernel"`},
		{`exports: [{name: a, type: webhook, url: "https://x", filter: {namespaces: ["[x"]}}]`, `not a valid glob`},
		{`exports: [{name: a, type: webhook, url: "https://x", timeout: soon}]`, `duration "soon"`},
		{`exports: [{name: a, type: webhook, url: "https://x", batch_size: 5000}]`, `batch_size 5000`},
		{`exports: [{name: a, type: webhook, url: "https://x", headers: {"X-A": "b\r\nEvil: 1"}}]`, `header "X-A"`},
		{"exports:\n  - &a {name: a, type: webhook, url: \"https://x\"}\n  - *a", `aliases`},
		{`exports: [{name: a, type: webhook, url: "https://x"}, {name: a, type: webhook, url: "https://y"}]`, `defined twice`},
		{`exports: {name: a}`, `YAML`},
	} {
		_, err := ParseYAML([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrConfig) {
			t.Errorf("ParseYAML(%s)\n  = %v\n  want an ErrConfig containing %q", tc.yaml, err, tc.want)
		}
	}
	// The Slack URL is the credential: never echoed in an error.
	_, err := ParseJSON([]byte(`{"name":"s","type":"slack","secrets":{"webhook_url":"ftp://hooks.slack.com/services/SECRET"}}`))
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error echoes the webhook URL: %v", err)
	}
	if _, err := ParseJSON([]byte(`{"name":"w","type":"webhook","url":"https://x","bogus":1}`)); err == nil {
		t.Error("unknown JSON field accepted")
	}
	if _, err := ParseJSON([]byte(`{"name":"w","type":"webhook","url":"https://x"} {}`)); err == nil {
		t.Error("trailing JSON accepted")
	}
}

// FuzzExportConfig: no configuration, however malformed, panics the
// parser, and whatever it accepts is a valid, storable export.
func FuzzExportConfig(f *testing.F) {
	f.Add([]byte(sampleYAML))
	f.Add([]byte(`exports: [{name: a, type: webhook, url: "https://x", filter: {namespaces: ["*"]}}]`))
	f.Add([]byte(`exports: [{name: k, type: kafka, brokers: ["[::1]:9092"], topic: t, sasl: scram-sha-512, username: u, secrets: {password: p}}]`))
	f.Add([]byte(`exports: [{name: s, type: syslog, address: "h:1", max_message_bytes: 65507, facility: 0}]`))
	f.Add([]byte(`{"name":"w","type":"webhook","url":"https://x","timeout":"1s"}`))
	f.Add([]byte("exports:\n  - name: [a]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(c *Config) {
			row, err := c.ToStore(store.ExportOriginAPI)
			if err != nil {
				t.Fatalf("accepted config does not convert: %v", err)
			}
			if !json.Valid(row.Config) {
				t.Fatalf("stored config is not JSON: %s", row.Config)
			}
			back, err := FromStore(&row)
			if err != nil {
				t.Fatalf("stored config does not read back: %v", err)
			}
			if err := back.Normalize(); err != nil {
				t.Fatalf("stored config no longer valid: %v", err)
			}
		}
		if cs, err := ParseYAML(b); err == nil {
			for i := range cs {
				check(&cs[i])
			}
		}
		if c, err := ParseJSON(b); err == nil {
			check(c)
		}
	})
}
