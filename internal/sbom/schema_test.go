package sbom

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestFixturesMatchSchemas shows the hand-written fixtures are in the exact
// published formats: they validate against the official CycloneDX 1.5 and
// SPDX 2.3 JSON schemas (kept in internal/report/testdata/schemas; see the
// README there). A real generated SBOM is checked the same way, as a
// control.
func TestFixturesMatchSchemas(t *testing.T) {
	dir := filepath.Join("..", "report", "testdata", "schemas")
	compile := func(main string) *jsonschema.Schema {
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		for url, file := range map[string]string{
			"file:///schemas/" + main:                                   main,
			"http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json":     "spdx.SNAPSHOT.schema.json",
			"http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json": "jsf-0.82.SNAPSHOT.schema.json",
		} {
			f, err := os.Open(filepath.Join(dir, file))
			if err != nil {
				t.Fatal(err)
			}
			doc, err := jsonschema.UnmarshalJSON(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.AddResource(url, doc); err != nil {
				t.Fatal(err)
			}
		}
		s, err := c.Compile("file:///schemas/" + main)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct{ file, schema string }{
		{"os-packages.cdx.json", "bom-1.5.SNAPSHOT.schema.json"},
		{"os-packages.spdx.json", "spdx-schema-2.3.json"},
		{"cyclonedx-npm-1.5.cdx.json", "bom-1.5.SNAPSHOT.schema.json"},
		{"cyclonedx-npm-1.6.cdx.json", "bom-1.6.SNAPSHOT.schema.json"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if err := compile(c.schema).Validate(inst); err != nil {
				t.Errorf("%s does not validate against %s:\n%v", c.file, c.schema, err)
			}
		})
	}
}
