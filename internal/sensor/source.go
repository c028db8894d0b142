package sensor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/bulwark-security/bulwark/internal/rules"
)

// Source produces runtime events. Read calls fn for every event until ctx
// is cancelled or the source is exhausted (a replay file's end: Read
// returns nil). fn must not block and must not keep ev: the pipeline copies
// the event by value before fn returns, so a source may reuse ev (and its
// strings) for the next event — but not the backing arrays of
// ev.Proc.Ancestors or ev.K8s.PodLabels, which the copy shares.
//
// *probe.Probe satisfies it through ProbeSource (see probe.go).
type Source interface {
	Read(ctx context.Context, fn func(*rules.Event)) error
}

// Replay is a Source over recorded events, one EventJSON per line. Lines that
// do not decode are counted and reported through OnError (with their line
// number) and skipped; they never stop the replay.
type Replay struct {
	R       io.Reader
	Name    string                    // for messages
	OnError func(line int, err error) // may be nil
	// Lines, Events and Bad are filled as the replay runs.
	Lines, Events, Bad int
}

// Read implements Source.
func (r *Replay) Read(ctx context.Context, fn func(*rules.Event)) error {
	br := bufio.NewReaderSize(r.R, 64<<10)
	var ev rules.Event
	var buf []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, tooLong, err := readLine(br, &buf)
		if len(line) == 0 && !tooLong && err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("replay %s: %w", r.Name, err)
		}
		r.Lines++
		if isBlank(line) && !tooLong {
			if err != nil {
				return nil
			}
			continue
		}
		var derr error
		if tooLong {
			derr = fmt.Errorf("%w: line longer than %d bytes", ErrBadEvent, maxEventLine)
		} else {
			derr = DecodeEvent(line, &ev)
		}
		if derr != nil {
			r.Bad++
			if r.OnError != nil {
				r.OnError(r.Lines, derr)
			}
		} else {
			r.Events++
			fn(&ev)
		}
		if err != nil {
			return nil // last line without a newline
		}
	}
}

// readLine reads one line into *buf without growing past maxEventLine; a
// longer line is consumed and reported as tooLong.
func readLine(br *bufio.Reader, buf *[]byte) (line []byte, tooLong bool, err error) {
	*buf = (*buf)[:0]
	for {
		chunk, isPrefix, e := br.ReadLine()
		if !tooLong {
			if len(*buf)+len(chunk) > maxEventLine {
				tooLong = true
				*buf = (*buf)[:0]
			} else {
				*buf = append(*buf, chunk...)
			}
		}
		if e != nil {
			return *buf, tooLong, e
		}
		if !isPrefix {
			return *buf, tooLong, nil
		}
	}
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
