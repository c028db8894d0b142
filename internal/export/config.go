package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/store"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid export configuration")

func configErr(name, format string, args ...any) error {
	if name == "" {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("%w: export %q: %s", ErrConfig, name, fmt.Sprintf(format, args...))
}

// Export types.
const (
	TypeWebhook       = "webhook"
	TypeSyslog        = "syslog"
	TypeSplunkHEC     = "splunk_hec"
	TypeElasticsearch = "elasticsearch"
	TypeKafka         = "kafka"
	TypeSlack         = "slack"
	TypeTeams         = "teams"
)

// Types lists every export type New can build.
var Types = []string{TypeWebhook, TypeSyslog, TypeSplunkHEC, TypeElasticsearch, TypeKafka, TypeSlack, TypeTeams}

// Formats.
const (
	FormatJSON    = "json"    // the Record as JSON (webhook, kafka)
	FormatOCSF    = "ocsf"    // OCSF Detection Finding (webhook, kafka)
	FormatRFC5424 = "rfc5424" // syslog: structured data + title
	FormatCEF     = "cef"     // syslog: ArcSight CEF in the message
)

// Duration is a time.Duration written as "10s" in YAML and JSON.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want e.g. 10s, 5m, 24h", string(b))
	}
	*d = Duration(v)
	return nil
}

// Filter selects the records an export receives.
type Filter struct {
	// MinSeverity: info, low, medium, high or critical (default info: all).
	MinSeverity string `json:"min_severity,omitempty" yaml:"min_severity"`
	// Sources: sensor, audit, admission, posture, scanner (default all).
	Sources []string `json:"sources,omitempty" yaml:"sources"`
	// Namespaces are globs ("prod-*"); "" matches cluster-scoped records.
	Namespaces []string `json:"namespaces,omitempty" yaml:"namespaces"`
	// Kinds: alert (default), finding, posture.
	Kinds []string `json:"kinds,omitempty" yaml:"kinds"`
}

// TLS configures the client side of TLS connections (syslog over TLS,
// HTTPS, Kafka).
type TLS struct {
	// CAFile or CAPEM: the receiver's CA (default: the system's roots).
	CAFile string `json:"ca_file,omitempty" yaml:"ca_file"`
	CAPEM  string `json:"ca_pem,omitempty" yaml:"ca_pem"`
	// ServerName overrides the name checked in the certificate.
	ServerName string `json:"server_name,omitempty" yaml:"server_name"`
	// InsecureSkipVerify turns certificate checks off (tests only).
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty" yaml:"insecure_skip_verify"`
	// Enable turns TLS on where it is optional (Kafka).
	Enable bool `json:"enable,omitempty" yaml:"enable"`
}

// Config is one export as written in central's configuration file (a
// list under "exports:") or sent to /api/v1/exports. Fields a type does
// not use must be empty.
type Config struct {
	Name    string `json:"name" yaml:"name"`
	Type    string `json:"type" yaml:"type"`
	Enabled *bool  `json:"enabled,omitempty" yaml:"enabled"`
	Filter  Filter `json:"filter,omitzero" yaml:"filter"`
	// Format: json or ocsf (webhook, kafka); rfc5424 or cef (syslog).
	Format string `json:"format,omitempty" yaml:"format"`

	// URL: the webhook, the Splunk HEC base (https://splunk:8088) or the
	// Elasticsearch base (https://es:9200).
	URL string `json:"url,omitempty" yaml:"url"`
	// Headers are sent with webhook requests.
	Headers map[string]string `json:"headers,omitempty" yaml:"headers"`
	// Network (udp, tcp, tls) and Address (host:port) of a syslog receiver.
	Network string `json:"network,omitempty" yaml:"network"`
	Address string `json:"address,omitempty" yaml:"address"`
	// Facility is the syslog facility (0-23, default 16: local0).
	Facility *int `json:"facility,omitempty" yaml:"facility"`
	// Hostname and AppName fill the RFC 5424 header (default: the host's
	// name, "bulwark").
	Hostname string `json:"hostname,omitempty" yaml:"hostname"`
	AppName  string `json:"app_name,omitempty" yaml:"app_name"`
	// MaxMessageBytes bounds one UDP syslog message (default 2048, the
	// size RFC 5426 says receivers should accept; at most 65507). Longer
	// records are shortened, not dropped.
	MaxMessageBytes int `json:"max_message_bytes,omitempty" yaml:"max_message_bytes"`
	// Brokers and Topic of a Kafka export.
	Brokers []string `json:"brokers,omitempty" yaml:"brokers"`
	Topic   string   `json:"topic,omitempty" yaml:"topic"`
	// SASL mechanism for Kafka: plain, scram-sha-256 or scram-sha-512
	// (with Username and Password).
	SASL string `json:"sasl,omitempty" yaml:"sasl"`
	// Index: Elasticsearch index (default bulwark-alerts) or Splunk index.
	Index string `json:"index,omitempty" yaml:"index"`
	// SourceType of Splunk events (default bulwark:alert).
	SourceType string `json:"sourcetype,omitempty" yaml:"sourcetype"`
	// Ack waits for Splunk indexer acknowledgement (the HEC token must
	// have it enabled); Channel is the HEC channel (default: a UUID).
	Ack     bool   `json:"ack,omitempty" yaml:"ack"`
	Channel string `json:"channel,omitempty" yaml:"channel"`
	// Username for Elasticsearch basic auth or Kafka SASL.
	Username string `json:"username,omitempty" yaml:"username"`
	TLS      TLS    `json:"tls,omitzero" yaml:"tls"`

	// Timeout bounds one delivery (default 10s). BatchSize is the most
	// records leased and delivered together (default 100; 1000 at most).
	// MaxAge turns records still undelivered after it into dead letters
	// (default 72h).
	Timeout   Duration `json:"timeout,omitempty" yaml:"timeout"`
	BatchSize int      `json:"batch_size,omitempty" yaml:"batch_size"`
	MaxAge    Duration `json:"max_age,omitempty" yaml:"max_age"`

	// Secrets: accepted on write, sealed in the store, never returned.
	Secrets Secrets `json:"secrets,omitzero" yaml:"secrets"`
}

// Secrets are the write-only settings of an export.
type Secrets struct {
	// HMACKey signs webhook bodies (X-Bulwark-Signature).
	HMACKey string `json:"hmac_key,omitempty" yaml:"hmac_key"`
	// Token is the Splunk HEC token.
	Token string `json:"token,omitempty" yaml:"token"`
	// Password for Elasticsearch basic auth or Kafka SASL.
	Password string `json:"password,omitempty" yaml:"password"`
	// APIKey is an Elasticsearch API key (the base64 "id:key" form).
	APIKey string `json:"api_key,omitempty" yaml:"api_key"`
	// WebhookURL is the Slack or Teams incoming-webhook URL (it is the
	// credential).
	WebhookURL string `json:"webhook_url,omitempty" yaml:"webhook_url"`
}

// IsZero reports whether no secret is set.
func (s Secrets) IsZero() bool { return s == Secrets{} }

// Names lists the secrets that are set (for the API's status).
func (s Secrets) Names() []string {
	var out []string
	for _, p := range []struct{ n, v string }{{"hmac_key", s.HMACKey}, {"token", s.Token}, {"password", s.Password},
		{"api_key", s.APIKey}, {"webhook_url", s.WebhookURL}} {
		if p.v != "" {
			out = append(out, p.n)
		}
	}
	return out
}

// IsEnabled is Enabled with its default (true).
func (c *Config) IsEnabled() bool { return c.Enabled == nil || *c.Enabled }

// Limits of a configuration.
const (
	maxConfigBytes  = 1 << 20
	maxExports      = 256
	maxBatch        = 1000
	defaultBatch    = 100
	defaultTimeout  = 10 * time.Second
	defaultMaxAge   = 72 * time.Hour
	defaultUDPBytes = 2048
	maxUDPBytes     = 65507
)

// Normalize fills defaults and checks the configuration, with errors that
// name the export and the field. It does not touch the network or files
// (except reading TLS.CAFile).
func (c *Config) Normalize() error {
	n := c.Name
	if n == "" || len(n) > 64 || strings.IndexFunc(n, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z'))
	}) >= 0 {
		return configErr("", "name %q: want 1-64 letters, digits, - _ .", cut(n, 80))
	}
	if !slices.Contains(Types, c.Type) {
		return configErr(n, "type %q: want one of %s", cut(c.Type, 40), strings.Join(Types, ", "))
	}
	if _, err := c.storeFilter(); err != nil {
		return err
	}
	if c.Timeout < 0 || c.MaxAge < 0 || c.BatchSize < 0 {
		return configErr(n, "timeout, max_age and batch_size must not be negative")
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(defaultTimeout)
	}
	if time.Duration(c.Timeout) > 10*time.Minute {
		return configErr(n, "timeout %s: at most 10m", time.Duration(c.Timeout))
	}
	if c.MaxAge == 0 {
		c.MaxAge = Duration(defaultMaxAge)
	}
	if c.BatchSize == 0 {
		c.BatchSize = defaultBatch
	}
	if c.BatchSize > maxBatch {
		return configErr(n, "batch_size %d: at most %d", c.BatchSize, maxBatch)
	}
	for k, v := range c.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n\t") || strings.ContainsAny(v, "\r\n") {
			return configErr(n, "header %q: malformed name or value", cut(k, 40))
		}
	}
	if c.TLS.CAFile != "" && c.TLS.CAPEM == "" {
		b, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return configErr(n, "tls.ca_file: %v", err)
		}
		c.TLS.CAPEM = string(b)
	}
	needURL := func(field, v string) error {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return configErr(n, "%s %q: want an http(s) URL", field, cut(v, 80))
		}
		return nil
	}
	onlyFormats := func(fs ...string) error {
		if c.Format == "" {
			c.Format = fs[0]
		}
		if !slices.Contains(fs, c.Format) {
			return configErr(n, "format %q: %s exports support %s", cut(c.Format, 40), c.Type, strings.Join(fs, ", "))
		}
		return nil
	}
	switch c.Type {
	case TypeWebhook:
		if err := needURL("url", c.URL); err != nil {
			return err
		}
		return onlyFormats(FormatJSON, FormatOCSF)
	case TypeSyslog:
		if c.Network == "" {
			c.Network = "udp"
		}
		if c.Network != "udp" && c.Network != "tcp" && c.Network != "tls" {
			return configErr(n, "network %q: want udp, tcp or tls", cut(c.Network, 40))
		}
		if _, _, err := net.SplitHostPort(c.Address); err != nil || c.Address == "" {
			return configErr(n, "address %q: want host:port", cut(c.Address, 80))
		}
		if c.Facility == nil {
			f := 16
			c.Facility = &f
		}
		if *c.Facility < 0 || *c.Facility > 23 {
			return configErr(n, "facility %d: want 0-23", *c.Facility)
		}
		if c.AppName == "" {
			c.AppName = "bulwark"
		}
		if c.MaxMessageBytes == 0 {
			c.MaxMessageBytes = defaultUDPBytes
		}
		if c.MaxMessageBytes < 480 || c.MaxMessageBytes > maxUDPBytes {
			return configErr(n, "max_message_bytes %d: want 480-%d", c.MaxMessageBytes, maxUDPBytes)
		}
		return onlyFormats(FormatRFC5424, FormatCEF)
	case TypeSplunkHEC:
		if err := needURL("url", c.URL); err != nil {
			return err
		}
		if c.Secrets.Token == "" {
			return configErr(n, "secrets.token (the HEC token) is required")
		}
		if c.SourceType == "" {
			c.SourceType = "bulwark:alert"
		}
		return onlyFormats(FormatJSON, FormatOCSF)
	case TypeElasticsearch:
		if err := needURL("url", c.URL); err != nil {
			return err
		}
		if c.Index == "" {
			c.Index = "bulwark-alerts"
		}
		if strings.ContainsAny(c.Index, `/\*?"<>| ,#:`) || strings.ToLower(c.Index) != c.Index || len(c.Index) > 255 {
			return configErr(n, "index %q: lowercase, without / \\ * ? \" < > | space , # :", cut(c.Index, 80))
		}
		if c.Secrets.APIKey != "" && c.Username != "" {
			return configErr(n, "use secrets.api_key or username/password, not both")
		}
		return onlyFormats(FormatJSON, FormatOCSF)
	case TypeKafka:
		if len(c.Brokers) == 0 {
			return configErr(n, "brokers (host:port list) is required")
		}
		for _, b := range c.Brokers {
			if _, _, err := net.SplitHostPort(b); err != nil {
				return configErr(n, "broker %q: want host:port", cut(b, 80))
			}
		}
		if c.Topic == "" || len(c.Topic) > 249 || strings.IndexFunc(c.Topic, func(r rune) bool {
			return !(r == '-' || r == '_' || r == '.' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z'))
		}) >= 0 {
			return configErr(n, "topic %q: want 1-249 letters, digits, - _ .", cut(c.Topic, 80))
		}
		switch c.SASL {
		case "", "plain", "scram-sha-256", "scram-sha-512":
		default:
			return configErr(n, "sasl %q: want plain, scram-sha-256 or scram-sha-512", cut(c.SASL, 40))
		}
		if c.SASL != "" && (c.Username == "" || c.Secrets.Password == "") {
			return configErr(n, "sasl needs username and secrets.password")
		}
		return onlyFormats(FormatJSON, FormatOCSF)
	case TypeSlack, TypeTeams:
		if c.Secrets.WebhookURL == "" {
			return configErr(n, "secrets.webhook_url (the incoming-webhook URL) is required")
		}
		if err := needURL("secrets.webhook_url", c.Secrets.WebhookURL); err != nil {
			return errors.New(strings.Replace(err.Error(), c.Secrets.WebhookURL, "…", 1)) // never echo the credential
		}
		if c.Format != "" && c.Format != "text" {
			return configErr(n, "format: %s exports send readable messages only", c.Type)
		}
		c.Format = "text"
	}
	return nil
}

// storeFilter converts the filter for the store.
func (c *Config) storeFilter() (store.ExportFilter, error) {
	var f store.ExportFilter
	if c.Filter.MinSeverity != "" {
		s, err := alerts.ParseSeverity(c.Filter.MinSeverity)
		if err != nil {
			return f, configErr(c.Name, "filter.min_severity %q: want info, low, medium, high or critical", cut(c.Filter.MinSeverity, 40))
		}
		f.MinSeverity = s
	}
	for _, s := range c.Filter.Sources {
		if !alerts.Source(s).Valid() {
			return f, configErr(c.Name, "filter.sources: %q (want sensor, audit, admission, posture or scanner)", cut(s, 40))
		}
	}
	for _, k := range c.Filter.Kinds {
		if k != store.ExportKindAlert && k != store.ExportKindFinding && k != store.ExportKindPosture {
			return f, configErr(c.Name, "filter.kinds: %q (want alert, finding or posture)", cut(k, 40))
		}
	}
	for _, g := range c.Filter.Namespaces {
		if _, err := path.Match(g, ""); err != nil || strings.Contains(g, ",") || len(g) > 253 {
			return f, configErr(c.Name, "filter.namespaces: %q is not a valid glob", cut(g, 80))
		}
	}
	f.Sources, f.Namespaces, f.Kinds = c.Filter.Sources, c.Filter.Namespaces, c.Filter.Kinds
	return f, nil
}

// ToStore splits a normalized configuration into the store's row: the
// public settings as JSON, the secrets apart (sealed by the store).
func (c *Config) ToStore(origin string) (store.Export, error) {
	f, err := c.storeFilter()
	if err != nil {
		return store.Export{}, err
	}
	pub := *c
	pub.Secrets = Secrets{}
	pub.TLS.CAFile = "" // the PEM was read in; the file may not exist on other replicas
	cfg, err := json.Marshal(pub)
	if err != nil {
		return store.Export{}, fmt.Errorf("encode export %s: %w", c.Name, err)
	}
	var sec json.RawMessage
	if !c.Secrets.IsZero() {
		if sec, err = json.Marshal(c.Secrets); err != nil {
			return store.Export{}, fmt.Errorf("encode export %s: %w", c.Name, err)
		}
	}
	return store.Export{Name: c.Name, Type: c.Type, Origin: origin, Enabled: c.IsEnabled(), Filter: f,
		Config: cfg, Secrets: sec}, nil
}

// FromStore rebuilds a configuration from a stored export (with secrets
// when the store returned them).
func FromStore(e *store.Export) (*Config, error) {
	var c Config
	if err := json.Unmarshal(e.Config, &c); err != nil {
		return nil, fmt.Errorf("export %s: stored config: %w", e.Name, err)
	}
	if len(e.Secrets) > 0 {
		if err := json.Unmarshal(e.Secrets, &c.Secrets); err != nil {
			return nil, fmt.Errorf("export %s: stored secrets: %w", e.Name, err)
		}
	}
	c.Name, c.Type = e.Name, e.Type
	en := e.Enabled
	c.Enabled = &en
	return &c, nil
}

// ParseJSON reads one export configuration (an API request body),
// refusing unknown fields, and normalizes it.
func ParseJSON(b []byte) (*Config, error) {
	c, err := DecodeJSON(b)
	if err != nil {
		return nil, err
	}
	if err := c.Normalize(); err != nil {
		return nil, err
	}
	return c, nil
}

// DecodeJSON is ParseJSON without Normalize (for an update that merges
// stored secrets in first).
func DecodeJSON(b []byte) (*Config, error) {
	if len(b) > maxConfigBytes {
		return nil, configErr("", "larger than %d bytes", maxConfigBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, configErr("", "malformed JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, configErr("", "trailing data after the JSON object")
	}
	return &c, nil
}

// fileConfig is the part of central's configuration file this package
// reads: the top-level "exports" list (other keys are the server's).
type fileConfig struct {
	Exports []yaml.Node `yaml:"exports"`
}

// ParseYAML reads the "exports:" list of a YAML configuration document.
// Unknown fields inside an export are errors (a misspelt field must not
// silently do nothing); names must be unique.
func ParseYAML(b []byte) ([]Config, error) {
	if len(b) > maxConfigBytes {
		return nil, configErr("", "configuration larger than %d bytes", maxConfigBytes)
	}
	var fc fileConfig
	if err := yaml.Unmarshal(b, &fc); err != nil {
		return nil, configErr("", "YAML: %v", err)
	}
	if len(fc.Exports) > maxExports {
		return nil, configErr("", "%d exports: at most %d", len(fc.Exports), maxExports)
	}
	out := make([]Config, 0, len(fc.Exports))
	seen := map[string]bool{}
	for i := range fc.Exports {
		node := &fc.Exports[i]
		if hasAlias(node, 0) {
			return nil, configErr("", "exports[%d] (line %d): aliases are not allowed", i, node.Line)
		}
		// Re-encode and decode strictly: yaml.v3 checks known fields only
		// through a Decoder.
		raw, err := yaml.Marshal(node)
		if err != nil {
			return nil, configErr("", "exports[%d] (line %d): %v", i, node.Line, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		var c Config
		if err := dec.Decode(&c); err != nil {
			return nil, configErr("", "exports[%d] (line %d): %v", i, node.Line, err)
		}
		if err := c.Normalize(); err != nil {
			return nil, fmt.Errorf("exports[%d] (line %d): %w", i, node.Line, err)
		}
		if seen[c.Name] {
			return nil, configErr(c.Name, "defined twice")
		}
		seen[c.Name] = true
		out = append(out, c)
	}
	return out, nil
}

// hasAlias reports YAML aliases (a "billion laughs" amplifier), bounded in
// depth.
func hasAlias(n *yaml.Node, depth int) bool {
	if n.Kind == yaml.AliasNode || depth > 64 {
		return true
	}
	for _, c := range n.Content {
		if hasAlias(c, depth+1) {
			return true
		}
	}
	return false
}

// LoadFile reads the exports of central's YAML configuration file.
func LoadFile(path string) ([]Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("exports config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("exports config %s: %w", path, err)
	}
	cs, err := ParseYAML(b)
	if err != nil {
		return nil, fmt.Errorf("exports config %s: %w", path, err)
	}
	return cs, nil
}
