package vulndb

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseFormatsHostile(t *testing.T) {
	t.Run("nodejs", func(t *testing.T) {
		for name, doc := range map[string]string{
			"truncated":       `{"id": 1, "module_name": "x", "vulnerable_versions": "<1`,
			"wrong type":      `{"id": 1, "module_name": ["x"], "vulnerable_versions": "<1.0.0"}`,
			"bad id":          `{"id": "1 OR 1", "module_name": "x", "vulnerable_versions": "<1.0.0"}`,
			"bad range":       `{"id": 1, "module_name": "x", "vulnerable_versions": ">=one"}`,
			"empty range set": `{"id": 1, "module_name": "x", "vulnerable_versions": ">2.0.0 <1.0.0"}`,
			"huge":            `{"id": 1, "module_name": "x", "overview": "` + strings.Repeat("a", MaxRecordSize) + `"}`,
		} {
			if _, err := parseNodeJSWG([]byte(doc)); err == nil || errors.Is(err, errNotRecord) {
				t.Errorf("%s: got %v, want an error", name, err)
			}
		}
		if _, err := parseNodeJSWG([]byte(`{"1": {"id": 1}}`)); !errors.Is(err, errNotRecord) {
			t.Errorf("index.json-like object: got %v, want errNotRecord", err)
		}
	})
	t.Run("alpine", func(t *testing.T) {
		for name, doc := range map[string]string{
			"no release":  "packages: []\n",
			"bad release": "distroversion: ../../x\npackages: []\n",
			"wrong type":  "distroversion: v3.10\npackages: {pkg: 1}\n",
			"aliases":     "distroversion: v3.10\nx: &a [1]\ny: *a\npackages: []\n",
		} {
			if _, _, err := parseAlpineSecdb([]byte(doc)); err == nil {
				t.Errorf("%s: no error", name)
			}
		}
		fixes, skipped, err := parseAlpineSecdb([]byte("distroversion: v3.10\npackages:\n- pkg:\n    name: p\n    secfixes:\n      0:\n      - CVE-2020-0001\n      1.2-r0:\n      - CVE-????-?????\n      - CVE-2020-0002 XSA-1\n"))
		if err != nil || skipped != 1 || len(fixes) != 1 || fixes[0].ID != "CVE-2020-0002" || fixes[0].Aliases[0] != "XSA-1" {
			t.Errorf("fixes %+v skipped %d err %v", fixes, skipped, err)
		}
	})
	t.Run("kev", func(t *testing.T) {
		for name, doc := range map[string]string{
			"truncated": `{"vulnerabilities": [`,
			"no CVE":    `{"vulnerabilities": [{"cveID": "not-a-cve"}]}`,
			"wrong":     `{"vulnerabilities": {"cveID": "CVE-2020-0001"}}`,
		} {
			if _, _, _, err := parseKEV([]byte(doc)); err == nil {
				t.Errorf("%s: no error", name)
			}
		}
	})
	t.Run("cve5", func(t *testing.T) {
		for name, doc := range map[string]string{
			"truncated":  `{"dataType": "CVE_RECORD", "cveMetadata": {`,
			"bad id":     `{"dataType": "CVE_RECORD", "cveMetadata": {"cveId": "CVE-20-1"}}`,
			"wrong type": `{"dataType": "CVE_RECORD", "cveMetadata": {"cveId": 7}}`,
		} {
			if _, _, _, _, err := parseCVE5([]byte(doc)); err == nil || errors.Is(err, errNotRecord) {
				t.Errorf("%s: got %v, want an error", name, err)
			}
		}
		// A bad vector is dropped, the rest of the record kept.
		id, info, _, _, err := parseCVE5([]byte(`{"dataType": "CVE_RECORD", "cveMetadata": {"cveId": "CVE-2020-0001", "state": "PUBLISHED"},
			"containers": {"cna": {"metrics": [{"cvssV3_1": {"vectorString": "CVSS:3.1/AV:Z"}}, {"cvssV3_1": {"vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}]}}}`))
		if err != nil || id != "CVE-2020-0001" || len(info.CVSS) != 1 || info.CVSS[0].Source != "cna" {
			t.Errorf("id %s info %+v err %v", id, info, err)
		}
	})
	t.Run("epss", func(t *testing.T) {
		if _, _, _, err := parseEPSS(strings.NewReader("cve,epss,percentile\nCVE-2020-0001," + strings.Repeat("9", 100<<10) + "\n")); err == nil {
			t.Error("100 KiB line accepted")
		}
		if _, _, _, err := parseEPSS(bytes.NewReader(nil)); err == nil {
			t.Error("empty file accepted")
		}
	})
}
