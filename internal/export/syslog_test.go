package export

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rsyslog is a real rsyslogd (Debian packages rsyslog and rsyslog-gnutls)
// listening on loopback UDP, TCP and TLS, writing every message it
// receives to a file per transport: the raw message, then the fields
// rsyslog parsed out of it, so the test checks both the bytes and that a
// real syslog server reads them as intended.
type rsyslog struct {
	dir           string
	udp, tcp, tls string
	caPEM         string
	cmd           *exec.Cmd
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeCert writes a CA and a server certificate for 127.0.0.1/localhost.
func writeCert(t *testing.T, dir string) (caPEM string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bulwark test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	for name, data := range map[string][]byte{
		"ca.pem":   []byte(caPEM),
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caPEM
}

func startRsyslog(t *testing.T) *rsyslog {
	t.Helper()
	// Under CI (scripts/test.sh installs the packages) a missing rsyslog is
	// a broken setup, not a pass.
	skip := t.Skip
	if os.Getenv("CI") == "true" {
		skip = t.Fatal
	}
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/rsyslogd"); err2 != nil {
			skip("rsyslogd not installed (apt-get install rsyslog rsyslog-gnutls); the syslog exporter is not tested against a real receiver")
		}
		bin = "/usr/sbin/rsyslogd"
	}
	if matches, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so"); len(matches) == 0 {
		skip("rsyslog's TLS driver is missing (apt-get install rsyslog-gnutls)")
	}
	dir := t.TempDir()
	rs := &rsyslog{dir: dir, caPEM: writeCert(t, dir)}
	up, tp, sp := freePort(t, "udp"), freePort(t, "tcp"), freePort(t, "tcp")
	rs.udp, rs.tcp, rs.tls = fmt.Sprintf("127.0.0.1:%d", up), fmt.Sprintf("127.0.0.1:%d", tp), fmt.Sprintf("127.0.0.1:%d", sp)
	conf := fmt.Sprintf(`
global(workDirectory="%[1]s" maxMessageSize="64k"
  defaultNetstreamDriverCAFile="%[1]s/ca.pem" defaultNetstreamDriverCertFile="%[1]s/cert.pem"
  defaultNetstreamDriverKeyFile="%[1]s/key.pem")
module(load="imudp")
module(load="imtcp" maxSessions="16")
template(name="raw" type="string" string="%%rawmsg%%\n")
template(name="parsed" type="string" string="%%pri%%|%%hostname%%|%%app-name%%|%%msgid%%|%%structured-data%%|%%msg%%\n")
ruleset(name="udp") { action(type="omfile" file="%[1]s/udp.raw" template="raw") action(type="omfile" file="%[1]s/udp.parsed" template="parsed") }
ruleset(name="tcp") { action(type="omfile" file="%[1]s/tcp.raw" template="raw") action(type="omfile" file="%[1]s/tcp.parsed" template="parsed") }
ruleset(name="tls") { action(type="omfile" file="%[1]s/tls.raw" template="raw") action(type="omfile" file="%[1]s/tls.parsed" template="parsed") }
input(type="imudp" address="127.0.0.1" port="%[2]d" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="%[3]d" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="%[4]d" ruleset="tls" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
`, dir, up, tp, sp)
	cfg := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, _ := os.Create(filepath.Join(dir, "rsyslogd.log"))
	cmd := exec.Command(bin, "-n", "-f", cfg, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	rs.cmd = cmd
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "rsyslogd.log"))
			t.Logf("rsyslogd log:\n%s", b)
		}
	})
	// Ready when both TCP listeners accept.
	waitFor(t, 15*time.Second, "rsyslogd listening", func() bool {
		for _, a := range []string{rs.tcp, rs.tls} {
			c, err := net.DialTimeout("tcp", a, 100*time.Millisecond)
			if err != nil {
				return false
			}
			c.Close()
		}
		return true
	})
	return rs
}

func (rs *rsyslog) lines(t *testing.T, file string) []string {
	b, err := os.ReadFile(filepath.Join(rs.dir, file))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// splitByMsgID splits lines into those of one connection (containing cef)
// and the rest, each in its original order.
func splitByMsgID(lines []string, cef string) [2][]string {
	var out [2][]string
	for _, l := range lines {
		i := 0
		if strings.Contains(l, cef) {
			i = 1
		}
		out[i] = append(out[i], l)
	}
	return out
}

// TestSyslogRsyslog delivers records over UDP, TCP and TLS in both
// formats to a real rsyslogd and checks the exact bytes it received and
// what it parsed from them.
func TestSyslogRsyslog(t *testing.T) {
	rs := startRsyslog(t)
	for _, tc := range []struct{ network, addr string }{{"udp", rs.udp}, {"tcp", rs.tcp}, {"tls", rs.tls}} {
		t.Run(tc.network, func(t *testing.T) {
			var want, wantParsed []string
			for _, format := range []string{FormatRFC5424, FormatCEF} {
				c := Config{Name: "rsyslog-" + tc.network, Type: TypeSyslog, Network: tc.network, Address: tc.addr,
					Format: format, Hostname: "central-1", TLS: TLS{CAPEM: rs.caPEM}}
				if err := c.Normalize(); err != nil {
					t.Fatal(err)
				}
				exp, err := New(&c, Deps{Version: "1.0"})
				if err != nil {
					t.Fatal(err)
				}
				recs := []Record{sampleRecord(1), sampleRecord(2), sampleRecord(3)}
				recs[2].Title = strings.Repeat("oversized ", 1000) // 10 kB: cut to 2048 bytes on UDP, whole on streams
				if err := exp.Deliver(context.Background(), recs); err != nil {
					t.Fatalf("%s: %v", format, err)
				}
				exp.(*syslogExporter).Close()
				for i := range recs {
					max := 0
					if tc.network == "udp" {
						max = c.MaxMessageBytes
					}
					var m string
					if format == FormatCEF {
						m = string(AppendCEFSyslog(nil, &recs[i], 16, "central-1", "bulwark", "1.0", max))
					} else {
						m = string(AppendRFC5424(nil, &recs[i], 16, "central-1", "bulwark", max))
					}
					want = append(want, m)
					// What rsyslog's parser must make of it.
					_, rest, _ := strings.Cut(m, " bulwark - ")
					msgid, rest, _ := strings.Cut(rest, " ")
					sd, msg := "-", ""
					if format == FormatCEF {
						msg = strings.TrimPrefix(rest, "- ")
					} else {
						i := strings.Index(rest, "] ")
						sd, msg = rest[:i+1], rest[i+2:]
					}
					wantParsed = append(wantParsed, fmt.Sprintf("131|central-1|bulwark|%s|%s|%s", msgid, sd, msg))
				}
			}
			waitFor(t, 10*time.Second, "rsyslog to write 6 messages", func() bool {
				return len(rs.lines(t, tc.network+".raw")) >= 6 && len(rs.lines(t, tc.network+".parsed")) >= 6
			})
			time.Sleep(200 * time.Millisecond) // nothing more may arrive
			// Each format went over its own connection: order is kept within a
			// connection, not across two (rsyslog serves them concurrently).
			if diff := cmp.Diff(splitByMsgID(want, " bulwark - CEF "), splitByMsgID(rs.lines(t, tc.network+".raw"), " bulwark - CEF ")); diff != "" {
				t.Errorf("raw messages (-sent +received):\n%s", diff)
			}
			if diff := cmp.Diff(splitByMsgID(wantParsed, "|bulwark|CEF|"), splitByMsgID(rs.lines(t, tc.network+".parsed"), "|bulwark|CEF|")); diff != "" {
				t.Errorf("parsed messages (-want +rsyslog):\n%s", diff)
			}
			if tc.network == "udp" {
				for _, l := range rs.lines(t, "udp.raw") {
					if len(l) > 2048 {
						t.Errorf("UDP message of %d bytes", len(l))
					}
				}
			}
		})
	}
}

// TestSyslogReceiverDown: a refused TCP connection is a retryable error,
// and the exporter reconnects once the receiver is back.
func TestSyslogReceiverDown(t *testing.T) {
	port := freePort(t, "tcp")
	c := Config{Name: "down", Type: TypeSyslog, Network: "tcp", Address: fmt.Sprintf("127.0.0.1:%d", port), Timeout: Duration(time.Second)}
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	exp, _ := New(&c, Deps{})
	err := exp.Deliver(context.Background(), []Record{sampleRecord(1)})
	if err == nil || IsPermanentForTest(err) {
		t.Fatalf("delivery to a closed port: %v (want a retryable error)", err)
	}
	l, err := net.Listen("tcp", c.Address)
	if err != nil {
		t.Skipf("port reused meanwhile: %v", err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, 8192)
		n, _ := conn.Read(buf)
		got <- string(buf[:n])
	}()
	if err := exp.Deliver(context.Background(), []Record{sampleRecord(1)}); err != nil {
		t.Fatal(err)
	}
	r := sampleRecord(1)
	m := string(AppendRFC5424(nil, &r, 16, exp.(*syslogExporter).hostname, "bulwark", 0))
	if s := <-got; s != fmt.Sprintf("%d %s", len(m), m) {
		t.Fatalf("octet-counted frame = %q", s)
	}
}
