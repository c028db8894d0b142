package export

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// The benchmark's receivers (syslog over UDP, syslog over TCP, an
// Elasticsearch bulk stand-in). In production they are other machines, so
// BenchmarkExportKeepUp runs them in a child process (this test binary
// re-executed with receiversChildEnv set) and reports central's CPU and
// theirs apart; BULWARK_EXPORT_RECEIVERS=inprocess runs them in the
// benchmark's own process, as before session 5, to compare with older
// figures.
const receiversChildEnv = "BULWARK_EXPORT_RECEIVERS_CHILD"

// receivers are the three running receivers.
type receivers struct {
	udp *udpCounter
	tcp *tcpFrameCounter
	es  *bulkCounter
	// esURL is the bulk stand-in's base URL.
	esURL string
	close func()
}

func startReceivers() (*receivers, error) {
	udp, err := startUDPCounter(false)
	if err != nil {
		return nil, err
	}
	tcp, err := startTCPFrameCounter()
	if err != nil {
		udp.conn.Close()
		return nil, err
	}
	es := &bulkCounter{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		udp.conn.Close()
		tcp.ln.Close()
		return nil, err
	}
	srv := &http.Server{Handler: es, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &receivers{udp: udp, tcp: tcp, es: es, esURL: "http://" + ln.Addr().String(), close: func() {
		udp.conn.Close()
		tcp.ln.Close()
		srv.Close()
	}}, nil
}

// receiversChildMain is the child process: it starts the receivers,
// writes their addresses on one line, then answers each line read from
// stdin with the counts "udp tcp es", until stdin ends.
func receiversChildMain() int {
	r, err := startReceivers()
	if err != nil {
		fmt.Fprintln(os.Stderr, "receivers:", err)
		return 1
	}
	defer r.close()
	fmt.Printf("%s %s %s\n", r.udp.addr, r.tcp.addr, r.esURL)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fmt.Printf("%d %d %d\n", r.udp.n.Load(), r.tcp.n.Load(), r.es.n.Load())
	}
	return 0
}

// receiverSet is the benchmark's handle on the receivers, in this process
// or in the child.
type receiverSet struct {
	udpAddr, tcpAddr, esURL string
	// counts returns what the receivers got: UDP datagrams, TCP frames,
	// bulk documents.
	counts func() (udp, tcp, es int64)
	// cpu is the child's CPU time so far (0 in process).
	cpu func() time.Duration
}

func newReceiverSet(b testing.TB) *receiverSet {
	if os.Getenv("BULWARK_EXPORT_RECEIVERS") == "inprocess" {
		r, err := startReceivers()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(r.close)
		return &receiverSet{udpAddr: r.udp.addr, tcpAddr: r.tcp.addr, esURL: r.esURL,
			counts: func() (int64, int64, int64) { return r.udp.n.Load(), r.tcp.n.Load(), r.es.n.Load() },
			cpu:    func() time.Duration { return 0 }}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), receiversChildEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 3 {
		b.Fatalf("receivers child: %q, %v", line, err)
	}
	rs := &receiverSet{udpAddr: f[0], tcpAddr: f[1], esURL: f[2]}
	rs.counts = func() (int64, int64, int64) {
		if _, err := io.WriteString(stdin, "counts\n"); err != nil {
			b.Fatalf("receivers child: %v", err)
		}
		line, err := out.ReadString('\n')
		var n [3]int64
		if _, serr := fmt.Sscan(line, &n[0], &n[1], &n[2]); err != nil || serr != nil {
			b.Fatalf("receivers child counts: %q, %v %v", line, err, serr)
		}
		return n[0], n[1], n[2]
	}
	rs.cpu = func() time.Duration {
		d, _ := procCPU(cmd.Process.Pid)
		return d
	}
	return rs
}

// udpCounter is a UDP syslog receiver that counts datagrams, reading up to
// 64 per system call (recvmmsg, as rsyslog's imudp does), or with one
// read each (oneByOne: no allocation, for benchmarks that count this
// process's allocations).
type udpCounter struct {
	addr string
	conn net.PacketConn
	n    atomic.Int64
}

func startUDPCounter(oneByOne bool) (*udpCounter, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	_ = c.(*net.UDPConn).SetReadBuffer(8 << 20)
	u := &udpCounter{addr: c.LocalAddr().String(), conn: c}
	if oneByOne {
		go func() {
			buf := make([]byte, 65536)
			for {
				n, err := c.(*net.UDPConn).Read(buf)
				if err != nil {
					return
				}
				if n > 0 {
					u.n.Add(1)
				}
			}
		}()
		return u, nil
	}
	go func() {
		pc := ipv4.NewPacketConn(c)
		msgs := make([]ipv4.Message, 64)
		for i := range msgs {
			msgs[i].Buffers = [][]byte{make([]byte, 65536)}
		}
		for {
			n, err := pc.ReadBatch(msgs, 0)
			if err != nil {
				return
			}
			for _, m := range msgs[:n] {
				if m.N > 0 { // an empty datagram is no syslog message
					u.n.Add(1)
				}
			}
		}
	}()
	return u, nil
}

// tcpFrameCounter is a TCP syslog receiver that parses RFC 6587 octet
// counting ("LEN SP MSG") and counts messages; a malformed frame ends the
// connection (so the sender's records are short and the benchmark fails).
type tcpFrameCounter struct {
	addr string
	ln   net.Listener
	n    atomic.Int64
}

func startTCPFrameCounter() (*tcpFrameCounter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &tcpFrameCounter{addr: ln.Addr().String(), ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReaderSize(conn, 256<<10)
				for {
					size, err := readFrameLen(r)
					if err != nil {
						return
					}
					if _, err := r.Discard(size); err != nil {
						return
					}
					t.n.Add(1)
				}
			}()
		}
	}()
	return t, nil
}

// readFrameLen reads "LEN SP" (1 to 7 digits, no leading zero) without
// allocating.
func readFrameLen(r *bufio.Reader) (int, error) {
	n, digits := 0, 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		switch {
		case c == ' ' && digits > 0:
			return n, nil
		case c >= '0' && c <= '9' && digits < 7 && (digits > 0 || c != '0'):
			n, digits = n*10+int(c-'0'), digits+1
		default:
			return 0, errors.New("bad frame length")
		}
	}
}

// bulkCounter answers the Elasticsearch bulk API: every "create" action
// is acknowledged as created (201) and counted. A body that is not action
// and document lines in pairs, each action a create, is refused (400).
type bulkCounter struct{ n atomic.Int64 }

func (c *bulkCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || r.URL.Path != "/_bulk" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	docs := 0
	for len(body) > 0 {
		action, rest, ok1 := bytes.Cut(body, []byte("\n"))
		doc, rest, ok2 := bytes.Cut(rest, []byte("\n"))
		if !ok1 || !ok2 || !bytes.HasPrefix(action, []byte(`{"create":`)) || len(doc) < 2 || doc[0] != '{' {
			http.Error(w, "malformed bulk body", http.StatusBadRequest)
			return
		}
		docs, body = docs+1, rest
	}
	out := make([]byte, 0, 64+45*docs)
	out = append(out, `{"took":1,"errors":false,"items":[`...)
	for i := range docs {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"create":{"status":201,"result":"created"}}`...)
	}
	out = append(out, "]}"...)
	c.n.Add(int64(docs))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
}
