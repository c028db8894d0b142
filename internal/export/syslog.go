package export

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// syslogExporter sends RFC 5424 messages (structured data, or a CEF line)
// over UDP (RFC 5426: one message per datagram, kept within
// MaxMessageBytes), TCP (RFC 6587 octet counting) or TLS (RFC 5425, the
// same framing). The stream connection is kept open between batches and
// redialled after an error.
type syslogExporter struct {
	c        *Config
	deps     Deps
	hostname string
	tls      *tls.Config

	mu    sync.Mutex
	conn  net.Conn
	batch batchWriter // UDP: the connection's sendmmsg (nil: one write per message)
	buf   []byte
	ends  []int          // UDP: where each message in buf ends
	msgs  []ipv4.Message // UDP: sendmmsg's messages (reused)
	iov   [][]byte
}

func newSyslog(c *Config, deps Deps) (*syslogExporter, error) {
	s := &syslogExporter{c: c, deps: deps, hostname: c.Hostname}
	if s.hostname == "" {
		s.hostname, _ = os.Hostname()
	}
	if c.Network == "tls" {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, configErr(c.Name, "%v", err)
		}
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(c.Address)
		}
		s.tls = tc
	}
	return s, nil
}

func (s *syslogExporter) Name() string { return s.c.Name }

// format appends one message without framing.
func (s *syslogExporter) format(b []byte, r *Record) []byte {
	max := 0
	if s.c.Network == "udp" {
		max = s.c.MaxMessageBytes
	}
	if s.c.Format == FormatCEF {
		return AppendCEFSyslog(b, r, *s.c.Facility, s.hostname, s.c.AppName, s.deps.Version, max)
	}
	return AppendRFC5424(b, r, *s.c.Facility, s.hostname, s.c.AppName, max)
}

func (s *syslogExporter) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: time.Duration(s.c.Timeout), KeepAlive: 30 * time.Second}
	switch s.c.Network {
	case "udp":
		return d.DialContext(ctx, "udp", s.c.Address)
	case "tcp":
		return d.DialContext(ctx, "tcp", s.c.Address)
	}
	td := &tls.Dialer{NetDialer: d, Config: s.tls}
	return td.DialContext(ctx, "tcp", s.c.Address)
}

func (s *syslogExporter) Deliver(ctx context.Context, recs []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		c, err := s.dial(ctx)
		if err != nil {
			return fmt.Errorf("syslog %s: dial %s %s: %w", s.c.Name, s.c.Network, s.c.Address, err)
		}
		s.conn, s.batch = c, nil
		if s.c.Network == "udp" {
			s.batch = newDatagramBatcher(c)
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.conn.SetWriteDeadline(dl)
	} else {
		_ = s.conn.SetWriteDeadline(time.Now().Add(time.Duration(s.c.Timeout)))
	}
	if s.c.Network == "udp" {
		return s.deliverDatagrams(recs)
	}
	// Stream: frames are written in chunks of about 64 KiB, so a batch
	// costs few writes; a write error fails the records of its chunk and
	// every later one (earlier chunks were handed to the kernel: syslog
	// over TCP is at-least-once, and a reconnect resends the rest).
	start := 0
	s.buf = s.buf[:0]
	flush := func(end int) error {
		if len(s.buf) == 0 {
			return nil
		}
		_, err := s.conn.Write(s.buf)
		s.buf = s.buf[:0]
		if err != nil {
			return s.failFrom(recs, start, "write", err)
		}
		start = end
		return nil
	}
	for i := range recs {
		// Octet counting: "LEN SP MSG". The length is only known after
		// formatting, so the message is formatted after room for it.
		mark := len(s.buf)
		s.buf = append(s.buf, "0000000 "...)
		s.buf = s.format(s.buf, &recs[i])
		n := len(s.buf) - mark - 8
		var num [24]byte
		prefix := append(strconv.AppendInt(num[:0], int64(n), 10), ' ')
		copy(s.buf[mark+8-len(prefix):], prefix)
		s.buf = append(s.buf[:mark], s.buf[mark+8-len(prefix):]...)
		if len(s.buf) >= 64<<10 {
			if err := flush(i + 1); err != nil {
				return err
			}
		}
	}
	return flush(len(recs))
}

// failFrom closes the connection after a failed write (the next batch
// redials) and fails recs[from:]: the records before were handed to the
// kernel.
func (s *syslogExporter) failFrom(recs []Record, from int, op string, err error) error {
	s.conn.Close()
	s.conn, s.batch = nil, nil
	errs := make([]error, len(recs))
	for j := from; j < len(recs); j++ {
		errs[j] = fmt.Errorf("syslog %s: %s: %w", s.c.Name, op, err)
	}
	if from == 0 {
		return errs[0]
	}
	return &BatchError{Errs: errs}
}

// datagramBatch is how many UDP messages one sendmmsg carries (the kernel
// takes at most 1024).
const datagramBatch = 256

// batchWriter sends several datagrams in one system call (sendmmsg on
// Linux; one per call elsewhere): ipv4.PacketConn or ipv6.PacketConn.
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// newDatagramBatcher wraps a connected UDP socket (nil if it is not
// one: then messages are written one by one).
func newDatagramBatcher(c net.Conn) batchWriter {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return nil
	}
	if ra, ok := uc.RemoteAddr().(*net.UDPAddr); ok && ra.IP.To4() == nil {
		return ipv6.NewPacketConn(uc)
	}
	return ipv4.NewPacketConn(uc)
}

// deliverDatagrams sends one message per datagram (RFC 5426), up to
// datagramBatch of them per system call instead of one write each (that
// write was a tenth of central's CPU per exported alert). The messages go
// to the connected peer (no address per message). A failed send fails
// that record and every later one; the ones sent before are delivered
// (UDP gives no more than that).
func (s *syslogExporter) deliverDatagrams(recs []Record) error {
	for start := 0; start < len(recs); {
		end := min(start+datagramBatch, len(recs))
		s.buf, s.ends = s.buf[:0], s.ends[:0]
		for i := start; i < end; i++ {
			s.buf = s.format(s.buf, &recs[i])
			s.ends = append(s.ends, len(s.buf))
		}
		if s.batch == nil {
			for k, e := range s.ends {
				from := 0
				if k > 0 {
					from = s.ends[k-1]
				}
				if _, err := s.conn.Write(s.buf[from:e]); err != nil {
					return s.failFrom(recs, start+k, "write", err)
				}
			}
			start = end
			continue
		}
		// The buffer is complete: the messages can point into it.
		n := len(s.ends)
		if cap(s.msgs) < n {
			s.msgs, s.iov = make([]ipv4.Message, n), make([][]byte, n)
		}
		msgs, iov := s.msgs[:n], s.iov[:n]
		from := 0
		for k, e := range s.ends {
			iov[k] = s.buf[from:e]
			msgs[k] = ipv4.Message{Buffers: iov[k : k+1 : k+1]}
			from = e
		}
		for sent := 0; sent < n; {
			k, err := s.batch.WriteBatch(msgs[sent:], 0)
			if k < 0 || k > n-sent {
				k = 0
			}
			sent += k
			if err == nil && k == 0 {
				err = io.ErrShortWrite
			}
			if err != nil {
				clear(iov)
				return s.failFrom(recs, start+sent, "write", err)
			}
		}
		clear(iov)
		start = end
	}
	return nil
}

// Close closes the connection.
func (s *syslogExporter) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		err := s.conn.Close()
		s.conn, s.batch = nil, nil
		return err
	}
	return nil
}
