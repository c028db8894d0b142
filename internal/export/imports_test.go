package export

import (
	"testing"

	"github.com/bulwark-security/bulwark/internal/importcheck"
)

// TestImports keeps the dependency direction of doc.go: the server wires
// this package, never the other way round.
func TestImports(t *testing.T) {
	importcheck.Forbid(t, ".", func(p string) bool {
		return importcheck.Internal(p, "server") || importcheck.Internal(p, "cli") || importcheck.Internal(p, "console")
	})
}

// TestTypesHaveExporters: every type in Types builds (the one explicit
// list is complete).
func TestTypesHaveExporters(t *testing.T) {
	base := map[string]Config{
		TypeWebhook:       {URL: "https://x"},
		TypeSyslog:        {Address: "127.0.0.1:514"},
		TypeSplunkHEC:     {URL: "https://x", Secrets: Secrets{Token: "t"}},
		TypeElasticsearch: {URL: "https://x"},
		TypeKafka:         {Brokers: []string{"127.0.0.1:9092"}, Topic: "t"},
		TypeSlack:         {Secrets: Secrets{WebhookURL: "https://hooks.example/x"}},
		TypeTeams:         {Secrets: Secrets{WebhookURL: "https://hooks.example/x"}},
	}
	for _, typ := range Types {
		c, ok := base[typ]
		if !ok {
			t.Errorf("type %s has no test configuration", typ)
			continue
		}
		c.Name, c.Type = "t-"+typ, typ
		if err := c.Normalize(); err != nil {
			t.Errorf("%s: %v", typ, err)
			continue
		}
		exp, err := New(&c, Deps{})
		if err != nil || exp.Name() != c.Name {
			t.Errorf("%s: %v", typ, err)
		}
	}
}
