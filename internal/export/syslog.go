package export

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
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

	mu   sync.Mutex
	conn net.Conn
	buf  []byte
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
		s.conn = c
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.conn.SetWriteDeadline(dl)
	} else {
		_ = s.conn.SetWriteDeadline(time.Now().Add(time.Duration(s.c.Timeout)))
	}
	stream := s.c.Network != "udp"
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
			s.conn.Close()
			s.conn = nil
			errs := make([]error, len(recs))
			for j := start; j < len(recs); j++ {
				errs[j] = fmt.Errorf("syslog %s: write: %w", s.c.Name, err)
			}
			if start == 0 {
				return errs[0]
			}
			return &BatchError{Errs: errs}
		}
		start = end
		return nil
	}
	for i := range recs {
		if !stream {
			s.buf = s.format(s.buf[:0], &recs[i])
			if err := flush(i + 1); err != nil {
				return err
			}
			continue
		}
		// Octet counting: "LEN SP MSG". The length is only known after
		// formatting, so the message is formatted after room for it.
		mark := len(s.buf)
		s.buf = append(s.buf, "0000000 "...)
		s.buf = s.format(s.buf, &recs[i])
		n := len(s.buf) - mark - 8
		prefix := strconv.Itoa(n) + " "
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

// Close closes the connection.
func (s *syslogExporter) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		err := s.conn.Close()
		s.conn = nil
		return err
	}
	return nil
}
