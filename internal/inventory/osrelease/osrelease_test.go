package osrelease

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/inventorytest"
)

func TestRequired(t *testing.T) {
	inventorytest.CheckRequired(t, New(), inventory.FileInfo{Size: 100}, map[string]bool{
		"etc/os-release":         true,
		"usr/lib/os-release":     true,
		"etc/alpine-release":     true,
		"etc/debian_version":     true,
		"etc/redhat-release":     true,
		"etc/almalinux-release":  true,
		"etc/rocky-release":      true,
		"etc/centos-release":     true,
		"":                       false,
		"os-release":             false,
		"etc/os-release.bak":     false,
		"usr/etc/os-release":     false,
		"etc/lsb-release":        false,
		"var/lib/dpkg/status":    false,
		"x/etc/os-release":       false,
		"etc/os-release/nothing": false,
	})
}

// TestExtractRealFiles reads real release files and checks the OS, the OSV
// ecosystem and the PURL distro derived from them.
func TestExtractRealFiles(t *testing.T) {
	tests := []struct {
		file, path string
		want       inventory.OS
		ecosystem  string
		distro     string
	}{
		{
			file: "debian-12.os-release", path: "etc/os-release",
			want:      inventory.OS{ID: "debian", VersionID: "12", Codename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)"},
			ecosystem: "Debian:12", distro: "debian-12",
		},
		{
			file: "debian-12.debian_version", path: "etc/debian_version",
			want:      inventory.OS{ID: "debian", VersionID: "12", PrettyName: "Debian GNU/Linux 12.11"},
			ecosystem: "Debian:12", distro: "debian-12",
		},
		{
			file: "distroless-debian-12.os-release", path: "usr/lib/os-release",
			want:      inventory.OS{ID: "debian", VersionID: "12", PrettyName: "Distroless"},
			ecosystem: "Debian:12", distro: "debian-12",
		},
		{
			file: "ubuntu-22.04.os-release", path: "etc/os-release",
			want:      inventory.OS{ID: "ubuntu", VersionID: "22.04", Codename: "jammy", PrettyName: "Ubuntu 22.04.3 LTS"},
			ecosystem: "Ubuntu:22.04:LTS", distro: "ubuntu-22.04",
		},
		{
			file: "alpine-3.18.os-release", path: "etc/os-release",
			want:      inventory.OS{ID: "alpine", VersionID: "3.18.4", PrettyName: "Alpine Linux v3.18"},
			ecosystem: "Alpine:v3.18", distro: "alpine-3.18.4",
		},
		{
			file: "alpine-3.18.alpine-release", path: "etc/alpine-release",
			want:      inventory.OS{ID: "alpine", VersionID: "3.18.4", PrettyName: "Alpine Linux v3.18.4"},
			ecosystem: "Alpine:v3.18", distro: "alpine-3.18.4",
		},
		{
			file: "almalinux-9.os-release", path: "etc/os-release",
			want: inventory.OS{ID: "almalinux", VersionID: "9.3", PrettyName: "AlmaLinux 9.3 (Shamrock Pampas Cat)",
				CPEName: "cpe:/o:almalinux:almalinux:9::baseos"},
			ecosystem: "AlmaLinux:9", distro: "almalinux-9.3",
		},
		{
			file: "almalinux-9.almalinux-release", path: "etc/almalinux-release",
			want:      inventory.OS{ID: "almalinux", VersionID: "9.3", PrettyName: "AlmaLinux release 9.3 (Shamrock Pampas Cat)"},
			ecosystem: "AlmaLinux:9", distro: "almalinux-9.3",
		},
		{
			file: "rhel-9.os-release", path: "etc/os-release",
			want: inventory.OS{ID: "rhel", VersionID: "9.3", PrettyName: "Red Hat Enterprise Linux 9.3 (Plow)",
				CPEName: "cpe:/o:redhat:enterprise_linux:9::baseos"},
			ecosystem: "Red Hat:enterprise_linux:9::baseos", distro: "rhel-9.3",
		},
		{
			file: "rhel-9.redhat-release", path: "etc/redhat-release",
			want:      inventory.OS{ID: "rhel", VersionID: "9.3", PrettyName: "Red Hat Enterprise Linux release 9.3 (Plow)"},
			ecosystem: "Red Hat:enterprise_linux:9::baseos", distro: "rhel-9.3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			out := inventorytest.MustExtract(t, New(), tt.path, inventorytest.ReadFile(t, "testdata/"+tt.file))
			if out.OS == nil {
				t.Fatal("no OS detected")
			}
			want := tt.want
			want.Location = tt.path
			if diff := cmp.Diff(&want, out.OS); diff != "" {
				t.Errorf("OS (-want +got):\n%s", diff)
			}
			if got := Ecosystem(out.OS); got != tt.ecosystem {
				t.Errorf("Ecosystem = %q, want %q", got, tt.ecosystem)
			}
			if got := PURLDistro(out.OS); got != tt.distro {
				t.Errorf("PURLDistro = %q, want %q", got, tt.distro)
			}
			if len(out.Packages) != 0 || len(out.OwnedFiles) != 0 {
				t.Errorf("unexpected packages or owned files: %+v", out)
			}
		})
	}
}

func TestParseQuoting(t *testing.T) {
	got := Parse([]byte("# comment\n  ID=\"my\\\"os\\\\\"  \nNAME='single quoted'\nVERSION_ID=\"1\\$2\"\nnot a line\n=novalue\nBAD KEY=x\nEMPTY=\n\r\nPRETTY_NAME=\"a\\nb\"\r\n"))
	want := map[string]string{
		"ID":          `my"os\`,
		"NAME":        "single quoted",
		"VERSION_ID":  "1$2",
		"EMPTY":       "",
		"PRETTY_NAME": `a\nb`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func TestEcosystem(t *testing.T) {
	tests := []struct {
		os   *inventory.OS
		want string
	}{
		{nil, ""},
		{&inventory.OS{ID: "debian", VersionID: "11"}, "Debian:11"},
		{&inventory.OS{ID: "debian", Codename: "trixie"}, "Debian:13"},
		{&inventory.OS{ID: "debian", Codename: "sid"}, ""},
		{&inventory.OS{ID: "debian"}, ""},
		{&inventory.OS{ID: "ubuntu", VersionID: "24.04"}, "Ubuntu:24.04:LTS"},
		{&inventory.OS{ID: "ubuntu", VersionID: "20.04"}, "Ubuntu:20.04:LTS"},
		{&inventory.OS{ID: "ubuntu", VersionID: "23.10"}, "Ubuntu:23.10"},
		{&inventory.OS{ID: "ubuntu", VersionID: "23.04"}, "Ubuntu:23.04"},
		{&inventory.OS{ID: "ubuntu", VersionID: "jammy"}, ""},
		{&inventory.OS{ID: "alpine", VersionID: "3.19_alpha20230901"}, "Alpine:v3.19"},
		{&inventory.OS{ID: "alpine", VersionID: "3"}, ""},
		{&inventory.OS{ID: "almalinux", VersionID: "8.10"}, "AlmaLinux:8"},
		{&inventory.OS{ID: "almalinux"}, ""},
		{&inventory.OS{ID: "rocky", VersionID: "9.2"}, "Rocky Linux:9"},
		{&inventory.OS{ID: "rhel"}, ""},
		{&inventory.OS{ID: "sles", VersionID: "15.5", PrettyName: "SUSE Linux Enterprise Server 15 SP5"}, "SUSE:Linux Enterprise Server 15 SP5"},
		{&inventory.OS{ID: "opensuse-leap", VersionID: "15.5"}, "openSUSE:Leap 15.5"},
		{&inventory.OS{ID: "wolfi", VersionID: "20230201"}, "Wolfi"},
		{&inventory.OS{ID: "photon", VersionID: "5.0"}, "Photon OS:5.0"},
		{&inventory.OS{ID: "fedora", VersionID: "39"}, ""},
		{&inventory.OS{ID: "centos", VersionID: "7"}, ""},
		{&inventory.OS{ID: "arch"}, ""},
	}
	for _, tt := range tests {
		if got := Ecosystem(tt.os); got != tt.want {
			t.Errorf("Ecosystem(%+v) = %q, want %q", tt.os, got, tt.want)
		}
	}
}

func TestPURL(t *testing.T) {
	deb := &inventory.Package{Name: "libssl3", Version: "3.0.19-1~deb12u2", Type: inventory.TypeDeb, Arch: "amd64"}
	debian := &inventory.OS{ID: "debian", VersionID: "12"}
	ubuntu := &inventory.OS{ID: "ubuntu", VersionID: "22.04"}
	rpm := &inventory.Package{Name: "openssl", Version: "1:3.0.7-27.el9", Type: inventory.TypeRPM, Arch: "x86_64"}
	alma := &inventory.OS{ID: "almalinux", VersionID: "9.3"}
	rhel := &inventory.OS{ID: "rhel", VersionID: "9.3"}
	tests := []struct {
		p    *inventory.Package
		os   *inventory.OS
		want string
	}{
		{deb, nil, "pkg:deb/debian/libssl3@3.0.19-1~deb12u2?arch=amd64"},
		{deb, debian, "pkg:deb/debian/libssl3@3.0.19-1~deb12u2?arch=amd64&distro=debian-12"},
		{deb, ubuntu, "pkg:deb/ubuntu/libssl3@3.0.19-1~deb12u2?arch=amd64&distro=ubuntu-22.04"},
		{&inventory.Package{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Type: inventory.TypeDeb, Arch: "amd64"}, debian,
			"pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12"},
		{rpm, nil, "pkg:rpm/openssl@3.0.7-27.el9?arch=x86_64&epoch=1"},
		{rpm, alma, "pkg:rpm/almalinux/openssl@3.0.7-27.el9?arch=x86_64&distro=almalinux-9.3&epoch=1"},
		{rpm, rhel, "pkg:rpm/redhat/openssl@3.0.7-27.el9?arch=x86_64&distro=rhel-9.3&epoch=1"},
		{&inventory.Package{Name: "bash", Version: "0:5.1.8-6.el9", Type: inventory.TypeRPM}, alma,
			"pkg:rpm/almalinux/bash@5.1.8-6.el9?distro=almalinux-9.3"},
		{&inventory.Package{Name: "musl", Version: "1.2.4-r2", Type: inventory.TypeAPK, Arch: "x86_64"}, nil,
			"pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64"},
		{&inventory.Package{Name: "musl", Version: "1.2.4-r2", Type: inventory.TypeAPK, Arch: "x86_64"}, &inventory.OS{ID: "alpine", VersionID: "3.18.4"},
			"pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.18.4"},
	}
	for _, tt := range tests {
		if got := PURL(tt.p, tt.os); got != tt.want {
			t.Errorf("PURL(%s, %+v) = %q, want %q", tt.p.Name, tt.os, got, tt.want)
		}
	}

	// FinalizePURL rewrites OS packages only.
	p := *deb
	p.PURL = PURL(&p, nil)
	FinalizePURL(&p, debian)
	if want := "pkg:deb/debian/libssl3@3.0.19-1~deb12u2?arch=amd64&distro=debian-12"; p.PURL != want {
		t.Errorf("FinalizePURL: %q, want %q", p.PURL, want)
	}
	npm := inventory.Package{Name: "left-pad", Version: "1.3.0", Type: inventory.TypeNPM, PURL: "pkg:npm/left-pad@1.3.0"}
	FinalizePURL(&npm, debian)
	if npm.PURL != "pkg:npm/left-pad@1.3.0" {
		t.Errorf("FinalizePURL changed an npm PURL: %q", npm.PURL)
	}
}

// TestHostile feeds files that are not release files: none may panic, and
// none may yield an OS that was not there (inventorytest checks that an OS
// found has an ID).
func TestHostile(t *testing.T) {
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(i * 7919 % 251)
	}
	hasOS := func(want bool) func(testing.TB, inventory.Output, error) {
		return func(t testing.TB, out inventory.Output, _ error) {
			if (out.OS != nil) != want {
				t.Errorf("OS = %+v, want OS: %v", out.OS, want)
			}
		}
	}
	ubuntu := string(inventorytest.ReadFile(t, "testdata/ubuntu-22.04.os-release"))
	inventorytest.RunHostile(t, New(), PathOSRelease, []inventorytest.Case{
		{Name: "empty os-release", Check: hasOS(false)},
		{Name: "binary os-release", In: string(garbage), Check: hasOS(false)},
		{Name: "binary alpine-release", Path: PathAlpine, In: string(garbage), Check: hasOS(false)},
		{Name: "binary debian_version", Path: PathDebian, In: string(garbage), Check: hasOS(false)},
		{Name: "binary redhat-release", Path: PathRedHat, In: string(garbage), Check: hasOS(false)},
		{Name: "truncated os-release", In: ubuntu[:30], Check: hasOS(true)},
		{Name: "giant line", In: "ID=" + strings.Repeat("x", MaxFileSize-10) + "\n", Check: hasOS(true)},
		{Name: "too large", In: strings.Repeat("ID=debian\n", MaxFileSize/10+1), ErrIs: inventory.ErrTooLarge, Check: hasOS(false)},
		{Name: "unknown redhat product", Path: PathRedHat, In: "Foo Linux release 1.0 (Bar)\n", Check: hasOS(false)},
		{Name: "redhat without version", Path: PathRedHat, In: "AlmaLinux release (x)\n", Check: hasOS(false)},
		{Name: "debian_version word", Path: PathDebian, In: "hello\n", Check: hasOS(false)},
		{Name: "alpine-release word", Path: PathAlpine, In: "edge\n", Check: hasOS(false)},
		{Name: "no ID", In: "NAME=\"Some Linux\"\n", Check: hasOS(true)},
	})
}

func TestExtractCancelled(t *testing.T) {
	inventorytest.CheckCancelled(t, New(), PathOSRelease, []byte("ID=debian\n"))
}

func FuzzOSRelease(f *testing.F) {
	for _, name := range []string{"debian-12.os-release", "ubuntu-22.04.os-release", "rhel-9.os-release", "alpine-3.18.alpine-release", "rhel-9.redhat-release"} {
		f.Add(inventorytest.ReadFile(f, "testdata/"+name))
	}
	f.Add([]byte("ID=\"\\\""))
	paths := []string{PathOSRelease, PathAlpine, PathDebian, PathRedHat}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range paths {
			// inventorytest.Fuzz checks that an OS has an ID and the path.
			out, err := inventorytest.Fuzz(t, New(), p, data)
			if err != nil {
				if len(data) <= MaxFileSize {
					t.Fatalf("%s: error on a small file: %v", p, err)
				}
				continue
			}
			if out.OS == nil {
				continue
			}
			_ = Ecosystem(out.OS)
			_ = PURL(&inventory.Package{Name: "x", Version: "1", Type: inventory.TypeDeb}, out.OS)
		}
	})
}

func BenchmarkOSRelease(b *testing.B) {
	data := inventorytest.ReadFile(b, "testdata/rhel-9.os-release")
	inventorytest.Benchmark(b, New(), PathOSRelease, data, func(out inventory.Output) bool { return out.OS != nil })
}
