package java

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/inventorytest"
)

const (
	log4jAPI    = "testdata/debian/log4j-api.jar"
	commonsText = "testdata/debian/commons-text.jar"
)

func extractWith(e *Extractor, p string, data []byte) ([]inventory.Package, error) {
	out, err := inventorytest.Extract(e, p, data)
	return out.Packages, err
}

func extract(p string, data []byte) ([]inventory.Package, error) {
	return extractWith(New(), p, data)
}

type entry struct {
	name   string
	data   []byte
	stored bool
}

// buildZip writes a zip with archive/zip, as jar and war tools do.
func buildZip(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.stored {
			h.Method = zip.Store
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// without copies a real jar, leaving out entries whose name contains any
// of drop.
func without(t testing.TB, jar []byte, drop ...string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(jar), int64(len(jar)))
	if err != nil {
		t.Fatal(err)
	}
	var entries []entry
next:
	for _, f := range zr.File {
		for _, d := range drop {
			if strings.Contains(f.Name, d) {
				continue next
			}
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, entry{name: f.Name, data: data})
	}
	return buildZip(t, entries...)
}

// wantPackages extracts data as the file at p and compares the packages
// with want.
func wantPackages(t *testing.T, p string, data []byte, want []inventory.Package) {
	t.Helper()
	got, err := extract(p, data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
}

func pkg(name, version, purl, location, detail string) inventory.Package {
	return inventory.Package{
		Name: name, Version: version, PURL: purl,
		Type: inventory.TypeMaven, Ecosystem: inventory.EcosystemMaven,
		Location: location, LocationDetail: detail, Extractor: Name,
	}
}

func log4jAPIPkg(location, detail string) inventory.Package {
	return pkg("org.apache.logging.log4j:log4j-api", "2.19.0",
		"pkg:maven/org.apache.logging.log4j/log4j-api@2.19.0", location, detail)
}

func commonsTextPkg(location, detail string) inventory.Package {
	return pkg("org.apache.commons:commons-text", "1.10.0",
		"pkg:maven/org.apache.commons/commons-text@1.10.0", location, detail)
}

func TestRealJars(t *testing.T) {
	tests := []struct {
		file string
		want []inventory.Package
	}{
		{log4jAPI, []inventory.Package{log4jAPIPkg("usr/share/java/log4j-api.jar", "")}},
		{commonsText, []inventory.Package{commonsTextPkg("usr/share/java/log4j-api.jar", "")}},
	}
	for _, tt := range tests {
		t.Run(path.Base(tt.file), func(t *testing.T) {
			wantPackages(t, "usr/share/java/log4j-api.jar", inventorytest.ReadFile(t, tt.file), tt.want)
		})
	}
}

// TestInstalledDebianJars reads the jars of the installed liblog4j2-java
// package and checks each against what dpkg says: the artifact in the file
// name, the version in the package version.
func TestInstalledDebianJars(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("dpkg-query not found: not a Debian system")
	}
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "liblog4j2-java").Output()
	if err != nil {
		t.Skip("liblog4j2-java is not installed (apt-get install --no-install-recommends liblog4j2-java)")
	}
	upstream, _, _ := strings.Cut(strings.TrimSpace(string(out)), "-") // "2.19.0-2" → "2.19.0"
	list, err := exec.Command("dpkg", "-L", "liblog4j2-java").Output()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range strings.Fields(string(list)) {
		fi, err := os.Lstat(f)
		if err != nil || !fi.Mode().IsRegular() || !New().Required(f[1:], inventory.FileInfo{Size: fi.Size(), Mode: fi.Mode()}) {
			continue
		}
		n++
		artifact := strings.TrimSuffix(path.Base(f), ".jar")
		if strings.HasPrefix(f, "/usr/share/maven-repo/") {
			// .../log4j-core/debian/log4j-core-debian.jar
			artifact = path.Base(path.Dir(path.Dir(f)))
		}
		got, err := extract(f[1:], inventorytest.ReadFile(t, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		want := []inventory.Package{pkg("org.apache.logging.log4j:"+artifact, upstream,
			"pkg:maven/org.apache.logging.log4j/"+artifact+"@"+upstream, f[1:], "")}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", f, diff)
		}
	}
	if n < 10 {
		t.Errorf("only %d jars in liblog4j2-java", n)
	}
}

func TestFallback(t *testing.T) {
	noPomText := without(t, inventorytest.ReadFile(t, commonsText), "META-INF/maven/")
	noPomAPI := without(t, inventorytest.ReadFile(t, log4jAPI), "META-INF/maven/")
	manifestOnly := func(m string) []byte {
		return buildZip(t, entry{name: "META-INF/MANIFEST.MF", data: []byte(m)})
	}
	tests := []struct {
		name, file string
		data       []byte
		want       []inventory.Package
	}{
		{
			// Automatic-Module-Name: org.apache.commons.text; version from
			// the file name.
			name: "module name and file name", file: "lib/commons-text-1.10.0.jar", data: noPomText,
			want: []inventory.Package{commonsTextPkg("lib/commons-text-1.10.0.jar", "")},
		},
		{
			// Bundle-SymbolicName: org.apache.logging.log4j.api;
			// Implementation-Version: 2.19.0; no version in the name.
			name: "bundle name and manifest version", file: "lib/log4j-api.jar", data: noPomAPI,
			want: []inventory.Package{log4jAPIPkg("lib/log4j-api.jar", "")},
		},
		{
			name: "no manifest", file: "lib/foo-bar-1.2.3.Final.jar", data: buildZip(t, entry{name: "a/B.class", data: []byte("x")}),
			want: []inventory.Package{pkg("foo-bar", "1.2.3.Final", "pkg:maven/foo-bar@1.2.3.Final", "lib/foo-bar-1.2.3.Final.jar", "")},
		},
		{
			name: "no version anywhere", file: "lib/foo.jar", data: buildZip(t, entry{name: "a/B.class", data: []byte("x")}),
		},
		{
			name: "vendor id", file: "lib/thing-2.0.jar",
			data: manifestOnly("Manifest-Version: 1.0\r\nImplementation-Vendor-Id: com.example\r\nImplementation-Version: 2.0.1\r\n"),
			want: []inventory.Package{pkg("com.example:thing", "2.0.1", "pkg:maven/com.example/thing@2.0.1", "lib/thing-2.0.jar", "")},
		},
		{
			// The symbolic name does not end with the artifact: no group
			// is guessed from it.
			name: "unrelated symbolic name", file: "lib/spring-core-5.3.20.jar",
			data: manifestOnly("Manifest-Version: 1.0\nAutomatic-Module-Name: spring.core\nBundle-SymbolicName: org.example.other\n"),
			want: []inventory.Package{pkg("spring-core", "5.3.20", "pkg:maven/spring-core@5.3.20", "lib/spring-core-5.3.20.jar", "")},
		},
		{
			// guice.jar in Debian carries only the pom.properties of the
			// cglib it shades: guice itself comes from the manifest.
			name: "shaded pom only", file: "usr/share/java/guice.jar",
			data: buildZip(t,
				entry{name: "META-INF/MANIFEST.MF", data: []byte("Manifest-Version: 1.0\nBundle-SymbolicName: com.google.inject.guice\nBundle-Version: 4.2.3\n")},
				entry{name: "META-INF/maven/cglib/cglib/pom.properties", data: []byte("version=3.2.12\ngroupId=cglib\nartifactId=cglib\n")}),
			want: []inventory.Package{
				pkg("cglib:cglib", "3.2.12", "pkg:maven/cglib/cglib@3.2.12", "usr/share/java/guice.jar", ""),
				pkg("com.google.inject:guice", "4.2.3", "pkg:maven/com.google.inject/guice@4.2.3", "usr/share/java/guice.jar", ""),
			},
		},
		{
			// A renamed jar whose own pom.properties is there: nothing more.
			name: "renamed jar with its pom", file: "usr/share/java/maven3-core.jar",
			data: buildZip(t,
				entry{name: "META-INF/MANIFEST.MF", data: []byte("Manifest-Version: 1.0\nImplementation-Version: 3.8.7\n")},
				entry{name: "META-INF/maven/org.apache.maven/maven-core/pom.properties", data: []byte("version=3.8.7\ngroupId=org.apache.maven\nartifactId=maven-core\n")}),
			want: []inventory.Package{pkg("org.apache.maven:maven-core", "3.8.7", "pkg:maven/org.apache.maven/maven-core@3.8.7", "usr/share/java/maven3-core.jar", "")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantPackages(t, tt.file, tt.data, tt.want)
		})
	}
}

func TestPomProperties(t *testing.T) {
	tests := []struct {
		name, props string
		want        []inventory.Package
	}{
		{
			name:  "path gives missing coordinates",
			props: "#Generated by Maven\nversion=1.2.3\n",
			want:  []inventory.Package{pkg("org.example:lib", "1.2.3", "pkg:maven/org.example/lib@1.2.3", "app.jar", "")},
		},
		{
			name:  "file wins over path, versions verbatim",
			props: "groupId = org.other\nartifactId: other-lib\nversion 2.0.0-RC1\n",
			want:  []inventory.Package{pkg("org.other:other-lib", "2.0.0-RC1", "pkg:maven/org.other/other-lib@2.0.0-RC1", "app.jar", "")},
		},
		{name: "unexpanded version", props: "version=${project.version}\n"},
		{name: "no version", props: "groupId=org.example\n"},
		{name: "binary garbage", props: "\x00\xff\xfe=\\u12\\\n\\"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jar := buildZip(t, entry{name: "META-INF/maven/org.example/lib/pom.properties", data: []byte(tt.props)})
			// The fallback names "app" only when a version is found; none is.
			wantPackages(t, "app.jar", jar, tt.want)
		})
	}
}

func TestParseProperties(t *testing.T) {
	in := "# comment\n! also a comment\n  \n" +
		"a=1\r\nb : 2\nc 3\nd=\ne\n" +
		"long = first \\\n    second\n" +
		"esc\\=key=tab\\there\\u0041\\\\\n" +
		"odd=end\\\\\nnext=ok\n" +
		"dangling=x\\"
	want := map[string]string{
		"a": "1", "b": "2", "c": "3", "d": "", "e": "",
		"long":     "first second",
		"esc=key":  "tab\thereA\\",
		"odd":      "end\\",
		"next":     "ok",
		"dangling": "x",
	}
	if diff := cmp.Diff(want, parseProperties([]byte(in))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseManifest(t *testing.T) {
	in := "Manifest-Version: 1.0\r\n" +
		"Bundle-SymbolicName: org.apache.logging.log4j.a\r\n pi;singleton:=true\r\n" +
		"implementation-VERSION: 2.19.0\r\n" +
		"no colon here\r\n" +
		" continuation of nothing\r\n" +
		"\r\n" +
		"Name: org/apache/\r\n" +
		"Implementation-Version: 9.9.9\r\n"
	want := map[string]string{
		"manifest-version":       "1.0",
		"bundle-symbolicname":    "org.apache.logging.log4j.api;singleton:=true",
		"implementation-version": "2.19.0",
	}
	if diff := cmp.Diff(want, parseManifest([]byte(in))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestSplitFileName(t *testing.T) {
	tests := []struct{ in, artifact, version string }{
		{"log4j-core-2.14.1.jar", "log4j-core", "2.14.1"},
		{"log4j-1.2-api-2.17.1.jar", "log4j-1.2-api", "2.17.1"},
		{"log4j-core.jar", "log4j-core", ""},
		{"guava-31.1-jre.jar", "guava", "31.1-jre"},
		{"commons-lang3-3.12.0.jar", "commons-lang3", "3.12.0"},
		{"bcprov-jdk15on-1.70.jar", "bcprov-jdk15on", "1.70"},
		{"hibernate-core-5.4.32.Final.jar", "hibernate-core", "5.4.32.Final"},
		{"jetty-server-9.4.46.v20220331.jar", "jetty-server", "9.4.46.v20220331"},
		{"spring-boot-2.7.0-SNAPSHOT.jar", "spring-boot", "2.7.0-SNAPSHOT"},
		{"lib-1.0.0-20220101.123456-1.jar", "lib", "1.0.0-20220101.123456-1"},
		{"foo-1.0-beta-2.war", "foo", "1.0-beta-2"},
		{"geronimo-annotation-1.3-spec.jar", "geronimo-annotation-1.3-spec", ""},
		{"jsr305-0.1~+svn49.jar", "jsr305-0.1~+svn49", ""},
		{"-1.0.jar", "-1.0", ""},
		{"app.jar", "app", ""},
		{".jar", ".jar", ""},
	}
	for _, tt := range tests {
		a, v := splitFileName(tt.in)
		if a != tt.artifact || v != tt.version {
			t.Errorf("splitFileName(%q) = %q, %q; want %q, %q", tt.in, a, v, tt.artifact, tt.version)
		}
	}
}

// TestNested builds real deployment archives around the real jars.
func TestNested(t *testing.T) {
	api, text := inventorytest.ReadFile(t, log4jAPI), inventorytest.ReadFile(t, commonsText)
	appPom := entry{name: "META-INF/maven/com.example/app/pom.properties", data: []byte("groupId=com.example\nartifactId=app\nversion=1.0.0\n")}
	war := buildZip(t,
		entry{name: "META-INF/MANIFEST.MF", data: []byte("Manifest-Version: 1.0\n")},
		appPom,
		entry{name: "WEB-INF/classes/com/example/App.class", data: []byte("\xca\xfe\xba\xbe")},
		entry{name: "WEB-INF/lib/log4j-api-2.19.0.jar", data: api},                   // deflated
		entry{name: "WEB-INF/lib/commons-text-1.10.0.jar", data: text, stored: true}, // in place
	)
	app := pkg("com.example:app", "1.0.0", "pkg:maven/com.example/app@1.0.0", "", "")
	at := func(p inventory.Package, location, detail string) inventory.Package {
		p.Location, p.LocationDetail = location, detail
		return p
	}
	tests := []struct {
		name, file string
		data       []byte
		want       []inventory.Package
	}{
		{
			name: "war", file: "srv/app.war", data: war,
			want: []inventory.Package{
				at(app, "srv/app.war", ""),
				log4jAPIPkg("srv/app.war", "WEB-INF/lib/log4j-api-2.19.0.jar"),
				commonsTextPkg("srv/app.war", "WEB-INF/lib/commons-text-1.10.0.jar"),
			},
		},
		{
			// Spring Boot stores BOOT-INF/lib uncompressed.
			name: "spring boot fat jar", file: "app/app.jar",
			data: buildZip(t,
				entry{name: "META-INF/MANIFEST.MF", data: []byte("Manifest-Version: 1.0\nMain-Class: org.springframework.boot.loader.JarLauncher\n")},
				appPom,
				entry{name: "BOOT-INF/lib/log4j-api-2.19.0.jar", data: api, stored: true},
				entry{name: "BOOT-INF/lib/commons-text-1.10.0.jar", data: text, stored: true},
			),
			want: []inventory.Package{
				at(app, "app/app.jar", ""),
				log4jAPIPkg("app/app.jar", "BOOT-INF/lib/log4j-api-2.19.0.jar"),
				commonsTextPkg("app/app.jar", "BOOT-INF/lib/commons-text-1.10.0.jar"),
			},
		},
		{
			name: "ear holding the war", file: "opt/app.EAR",
			data: buildZip(t,
				entry{name: "META-INF/application.xml", data: []byte("<application/>")},
				entry{name: "app.war", data: war},
				entry{name: "lib/log4j-api-2.19.0.jar", data: api, stored: true},
			),
			want: []inventory.Package{
				at(app, "opt/app.EAR", "app.war"),
				log4jAPIPkg("opt/app.EAR", "app.war!WEB-INF/lib/log4j-api-2.19.0.jar"),
				commonsTextPkg("opt/app.EAR", "app.war!WEB-INF/lib/commons-text-1.10.0.jar"),
				log4jAPIPkg("opt/app.EAR", "lib/log4j-api-2.19.0.jar"),
			},
		},
		{
			// A Spring Boot "fully executable" jar starts with a shell
			// script.
			name: "launch script before the zip", file: "app/app.jar",
			data: append([]byte("#!/bin/bash\nexec java -jar \"$0\" \"$@\"\n"), war...),
			want: []inventory.Package{
				at(app, "app/app.jar", ""),
				log4jAPIPkg("app/app.jar", "WEB-INF/lib/log4j-api-2.19.0.jar"),
				commonsTextPkg("app/app.jar", "WEB-INF/lib/commons-text-1.10.0.jar"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantPackages(t, tt.file, tt.data, tt.want)
		})
	}
}

func TestNestingDepthBound(t *testing.T) {
	// Six levels: the outer jar, then jars 1..5 inside one another, each
	// with its own pom.properties. Levels up to 4 are read.
	var inner []byte
	for level := 5; level >= 0; level-- {
		name := "l" + string(rune('0'+level))
		entries := []entry{{name: "META-INF/maven/g/" + name + "/pom.properties", data: []byte("version=1\n")}}
		if inner != nil {
			entries = append(entries, entry{name: "lib/l" + string(rune('0'+level+1)) + ".jar", data: inner})
		}
		inner = buildZip(t, entries...)
	}
	got, err := extract("deep.jar", inner)
	if err == nil || !strings.Contains(err.Error(), "nested more than 4 archives deep") {
		t.Errorf("err = %v; want the depth bound reported", err)
	}
	var names []string
	for _, p := range got {
		names = append(names, p.Name+" @ "+p.LocationDetail)
	}
	want := []string{
		"g:l0 @ ",
		"g:l1 @ lib/l1.jar",
		"g:l2 @ lib/l1.jar!lib/l2.jar",
		"g:l3 @ lib/l1.jar!lib/l2.jar!lib/l3.jar",
		"g:l4 @ lib/l1.jar!lib/l2.jar!lib/l3.jar!lib/l4.jar",
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
}

// TestBombs checks each bound with limits small enough to hit cheaply; the
// packages outside the offending entry are still returned.
func TestBombs(t *testing.T) {
	api := inventorytest.ReadFile(t, log4jAPI)
	zeros := bytes.Repeat([]byte{0}, 4<<20) // deflates to ~4 KB
	small := limits{depth: 4, nestedSize: 1 << 20, buffered: 2 << 20, inflated: 3 << 20, entries: 1000, metaSize: 4096}
	tests := []struct {
		name string
		data []byte
		want []string // package names still found
	}{
		{
			name: "nested entry inflating beyond its bound",
			data: buildZip(t, entry{name: "WEB-INF/lib/bomb.jar", data: zeros}, entry{name: "WEB-INF/lib/log4j-api.jar", data: api}),
			want: []string{"org.apache.logging.log4j:log4j-api"},
		},
		{
			name: "many stored copies exhausting the total",
			data: buildZip(t,
				entry{name: "a/1.jar", data: api, stored: true}, entry{name: "a/2.jar", data: api, stored: true},
				entry{name: "a/3.jar", data: api, stored: true}, entry{name: "a/4.jar", data: api, stored: true},
				entry{name: "a/5.jar", data: api, stored: true}, entry{name: "a/6.jar", data: api, stored: true},
				entry{name: "a/7.jar", data: api, stored: true}, entry{name: "a/8.jar", data: api, stored: true},
				entry{name: "a/9.jar", data: api, stored: true}, entry{name: "a/10.jar", data: api, stored: true},
				entry{name: "a/11.jar", data: api, stored: true}),
			want: []string{"org.apache.logging.log4j:log4j-api"}, // found in the first copies
		},
		{
			name: "huge pom.properties",
			data: buildZip(t, entry{name: "META-INF/maven/g/a/pom.properties", data: append([]byte("version=1\n"), zeros...)},
				entry{name: "lib/log4j-api.jar", data: api}),
			want: []string{"org.apache.logging.log4j:log4j-api"},
		},
		{
			name: "huge manifest",
			data: buildZip(t, entry{name: "META-INF/MANIFEST.MF", data: zeros}, entry{name: "lib/log4j-api.jar", data: api}),
			want: []string{"org.apache.logging.log4j:log4j-api"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := extractWith(&Extractor{lim: small}, "app.war", tt.data)
			if !errors.Is(err, inventory.ErrTooLarge) {
				t.Errorf("err = %v; want ErrTooLarge", err)
			}
			names := map[string]bool{}
			for _, p := range got {
				names[p.Name] = true
			}
			for _, n := range tt.want {
				if !names[n] {
					t.Errorf("%s missing from %v", n, got)
				}
			}
		})
	}

	// The entry bound stops the walk itself.
	many := make([]entry, 1001)
	for i := range many {
		many[i] = entry{name: "f" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + ".class"}
	}
	if _, err := extractWith(&Extractor{lim: small}, "app.jar", buildZip(t, many...)); !errors.Is(err, inventory.ErrTooLarge) {
		t.Errorf("1001 entries: err = %v; want ErrTooLarge", err)
	}
}

// TestLyingSizes checks entries whose headers understate what they inflate
// to: the bound holds on the bytes actually read.
func TestLyingSizes(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var deflated bytes.Buffer
	inner := buildZip(t, entry{name: "x", data: bytes.Repeat([]byte("A"), 1<<20)})
	zr, err := zip.NewReader(bytes.NewReader(inner), int64(len(inner)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := zr.File[0].OpenRaw()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(&deflated, raw); err != nil {
		t.Fatal(err)
	}
	h := zr.File[0].FileHeader
	h.Name = "lib/liar.jar"
	h.UncompressedSize64 = 100 // a lie: it inflates to 1 MiB
	w, err := zw.CreateRaw(&h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(deflated.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	small := limits{depth: 4, nestedSize: 64 << 10, buffered: 64 << 10, inflated: 1 << 20, entries: 100, metaSize: 4096}
	_, err = extractWith(&Extractor{lim: small}, "app.jar", buf.Bytes())
	if err == nil {
		t.Error("no error for an entry inflating past its declared size")
	}
}

func TestDamaged(t *testing.T) {
	api := inventorytest.ReadFile(t, log4jAPI)
	// names checks the packages still found, and that an error names the
	// file.
	names := func(want ...string) func(testing.TB, inventory.Output, error) {
		return func(t testing.TB, out inventory.Output, err error) {
			if err != nil && !strings.Contains(err.Error(), "srv/x.jar") {
				t.Errorf("error %q does not name the file", err)
			}
			var got []string
			for _, p := range out.Packages {
				got = append(got, p.Name)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("packages (-want +got):\n%s", diff)
			}
		}
	}
	inventorytest.RunHostile(t, New(), "srv/x.jar", []inventorytest.Case{
		{Name: "text file", In: "this is not a jar, just text\n", ErrIs: ErrNotZip, Check: names()},
		{Name: "too short", In: "PK", ErrIs: ErrNotZip, Check: names()},
		{Name: "truncated", In: string(api[:len(api)/2]), ErrIs: ErrNotZip, Check: names()},
		{Name: "zip magic then garbage", In: "PK\x03\x04" + strings.Repeat("\x5a", 5000), ErrIs: ErrNotZip, Check: names()},
		{Name: "empty zip", In: string(buildZip(t)), Check: names()},
		{
			Name: "corrupt nested jar", ErrIs: ErrNotZip, Pkgs: 1, Check: names("org.apache.logging.log4j:log4j-api"),
			In: string(buildZip(t, entry{name: "WEB-INF/lib/broken.jar", data: []byte("PK\x03\x04garbage")}, entry{name: "WEB-INF/lib/api.jar", data: api})),
		},
		{
			// Entry names are data, never paths: hostile ones are reported
			// verbatim and nothing is touched.
			Name: "traversal names", Pkgs: 1, Check: names("org.apache.logging.log4j:log4j-api"),
			In: string(buildZip(t, entry{name: "../../../etc/evil.jar", data: api, stored: true},
				entry{name: "/abs/META-INF/maven/g/a/pom.properties", data: []byte("version=1")})),
		},
		{
			Name: "binary manifest", Check: names(),
			In: string(buildZip(t, entry{name: "META-INF/MANIFEST.MF", data: []byte("\x00\xff: \n \n\x01:\x02\n\n\n:")})),
		},
	})
}

// TestManyBrokenNested checks that errors from many broken nested archives
// are summarised, not all kept.
func TestManyBrokenNested(t *testing.T) {
	var entries []entry
	for i := range 30 {
		entries = append(entries, entry{name: "lib/broken" + strconv.Itoa(i) + ".jar", data: []byte("PK\x03\x04 no zip")})
	}
	entries = append(entries, entry{name: "lib/api.jar", data: inventorytest.ReadFile(t, log4jAPI)})
	got, err := extract("app.war", buildZip(t, entries...))
	if err == nil || !strings.Contains(err.Error(), "and 10 more errors") || strings.Count(err.Error(), "\n") != maxErrs {
		t.Errorf("err = %v; want %d errors and a count of the rest", err, maxErrs)
	}
	if len(got) != 1 {
		t.Errorf("packages %v; want log4j-api", got)
	}
}

func TestCheapRejection(t *testing.T) {
	calls := 0
	_, err := New().Extract(context.Background(), inventorytest.CountReaderAt(inventorytest.Input("a.jar", []byte("<html>not found</html>")), &calls))
	if !errors.Is(err, ErrNotZip) || calls != 0 {
		t.Errorf("err %v, ReaderAt called %d times; want ErrNotZip without buffering", err, calls)
	}
}

func TestRequired(t *testing.T) {
	tests := []struct {
		path string
		info inventory.FileInfo
		want bool
	}{
		{"usr/share/java/log4j-core.jar", inventory.FileInfo{Size: 1 << 20, Mode: 0o644}, true},
		{"srv/APP.WAR", inventory.FileInfo{Size: 1 << 20, Mode: 0o644}, true},
		{"srv/app.ear", inventory.FileInfo{Size: 1 << 20, Mode: 0o644}, true},
		{"var/jenkins/plugins/git.jpi", inventory.FileInfo{Size: 1 << 20, Mode: 0o644}, true},
		{"var/jenkins/plugins/git.hpi", inventory.FileInfo{Size: 1 << 20, Mode: 0o644}, true},
		{"x/a.par", inventory.FileInfo{Size: 1 << 20, Mode: 0o644}, true},
		{"x/a.sar", inventory.FileInfo{Size: 1 << 20, Mode: 0o755}, true},
		{"usr/share/java/log4j-core-2.19.0.jar", inventory.FileInfo{Size: 14, Mode: fs.ModeSymlink | 0o777}, false},
		{"x/a.jar", inventory.FileInfo{Size: 10, Mode: 0o644}, false},
		{"x/a.jar", inventory.FileInfo{Size: MaxFileSize + 1, Mode: 0o644}, false},
		{"x/a.jar", inventory.FileInfo{Size: 4096, Mode: fs.ModeDir | 0o755}, false},
		{"x/a.jar.sha1", inventory.FileInfo{Size: 40, Mode: 0o644}, false},
		{"x/jar", inventory.FileInfo{Size: 4096, Mode: 0o644}, false},
		{"x.jar/readme", inventory.FileInfo{Size: 4096, Mode: 0o644}, false},
		{"x/a.zip", inventory.FileInfo{Size: 4096, Mode: 0o644}, false},
	}
	e := New()
	for _, tt := range tests {
		if got := e.Required(tt.path, tt.info); got != tt.want {
			t.Errorf("Required(%q, %v) = %v; want %v", tt.path, tt.info, got, tt.want)
		}
	}
}

func TestCancelled(t *testing.T) {
	inventorytest.CheckCancelled(t, New(), "a.jar", inventorytest.ReadFile(t, log4jAPI))
}

func FuzzJar(f *testing.F) {
	inner := buildZip(f,
		entry{name: "META-INF/MANIFEST.MF", data: []byte("Manifest-Version: 1.0\nBundle-SymbolicName: org.example.lib\nBundle-Version: 1.0\n")},
		entry{name: "META-INF/maven/org.example/lib/pom.properties", data: []byte("groupId=org.example\nartifactId=lib\nversion=1.0\n")})
	f.Add(inner)
	f.Add(buildZip(f, entry{name: "WEB-INF/lib/lib-1.0.jar", data: inner}))
	f.Add(buildZip(f, entry{name: "BOOT-INF/lib/lib-1.0.jar", data: inner, stored: true}))
	f.Add(buildZip(f))
	f.Add([]byte("#!/bin/sh\nPK\x05\x06"))
	small := limits{depth: 4, nestedSize: 1 << 20, buffered: 2 << 20, inflated: 4 << 20, entries: 10_000, metaSize: 64 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Names, versions and locations are checked by inventorytest.Fuzz.
		out, _ := inventorytest.Fuzz(t, &Extractor{lim: small}, "app/x.war", data)
		for _, p := range out.Packages {
			if !strings.HasPrefix(p.PURL, "pkg:maven/") {
				t.Fatalf("malformed package %+v", p)
			}
		}
	})
}

func BenchmarkJar(b *testing.B) {
	data := inventorytest.ReadFile(b, log4jAPI)
	benchmark(b, "usr/share/java/log4j-api.jar", data, 1)
}

// BenchmarkWar reads a war holding both real jars, one deflated (inflated
// into memory) and one stored (read in place).
func BenchmarkWar(b *testing.B) {
	war := buildZip(b,
		entry{name: "WEB-INF/lib/log4j-api-2.19.0.jar", data: inventorytest.ReadFile(b, log4jAPI)},
		entry{name: "WEB-INF/lib/commons-text-1.10.0.jar", data: inventorytest.ReadFile(b, commonsText), stored: true})
	benchmark(b, "srv/app.war", war, 2)
}

func benchmark(b *testing.B, p string, data []byte, want int) {
	inventorytest.Benchmark(b, New(), p, data, inventorytest.Packages(want))
}

func TestGroupFromSymbolicName(t *testing.T) {
	tests := []struct{ name, artifact, want string }{
		{"org.apache.commons.text", "commons-text", "org.apache.commons"},
		{"org.apache.logging.log4j.api", "log4j-api", "org.apache.logging.log4j"},
		{"com.fasterxml.jackson.core.jackson-databind", "jackson-databind", "com.fasterxml.jackson.core"},
		{"org.apache.geronimo.specs.geronimo-annotation_1.3_spec", "geronimo-annotation-1.3-spec", "org.apache.geronimo.specs"},
		{"org.eclipse.jetty.server;singleton:=true", "jetty-server", "org.eclipse.jetty"},
		{"org.yaml.snakeyaml", "snakeyaml", "org.yaml"},
		{"spring.core", "spring-core", ""},
		{"com.google.inject", "guice", ""},
		{"", "guice", ""},
		{"guice", "guice", ""},
		{".guice", "guice", ""},
		{"org.example.", "x", ""},
	}
	for _, tt := range tests {
		if got := groupFromSymbolicName(tt.name, tt.artifact); got != tt.want {
			t.Errorf("groupFromSymbolicName(%q, %q) = %q; want %q", tt.name, tt.artifact, got, tt.want)
		}
	}
}
