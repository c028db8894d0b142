package alerts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// DecodeBatch reads one ingest body strictly: at most MaxBodyBytes, one JSON
// object, no unknown fields, no trailing data, 1..MaxBatch alerts, each
// valid, no id twice in the batch. Errors wrap ErrInvalid (or ErrTooLarge)
// and say what is wrong, so a sender's log tells its operator the fix.
// Memory is bounded by MaxBodyBytes whatever the body claims.
func DecodeBatch(r io.Reader) (*Batch, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read alert batch: %w", err)
	}
	if len(body) > MaxBodyBytes {
		return nil, fmt.Errorf("read alert batch: %w (limit %d bytes)", ErrTooLarge, MaxBodyBytes)
	}
	b, ok := readBatch(body)
	if !ok {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		b = Batch{}
		if err := dec.Decode(&b); err != nil {
			return nil, fmt.Errorf("decode alert batch: %w", invalidJSON(err))
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, fmt.Errorf("decode alert batch: %w", invalid("trailing data after the JSON object"))
		}
	}
	if len(b.Alerts) == 0 {
		return nil, fmt.Errorf("decode alert batch: %w", invalid(`"alerts" is empty or missing`))
	}
	if len(b.Alerts) > MaxBatch {
		return nil, fmt.Errorf("decode alert batch: %w (%d alerts, limit %d)", ErrTooLarge, len(b.Alerts), MaxBatch)
	}
	seen := make(map[string]struct{}, len(b.Alerts))
	for i := range b.Alerts {
		a := &b.Alerts[i]
		if err := a.Validate(); err != nil {
			return nil, fmt.Errorf("alert %d of the batch: %w", i, err)
		}
		if _, dup := seen[a.ID]; dup {
			return nil, fmt.Errorf("alert %d of the batch: %w", i, invalid("id %s appears twice in the batch", a.ID))
		}
		seen[a.ID] = struct{}{}
	}
	return &b, nil
}

// ErrTooLarge: a body or batch beyond MaxBodyBytes or MaxBatch (HTTP 413).
var ErrTooLarge = errors.New("alert batch too large")

// invalidJSON turns decoder errors into ErrInvalid with the position, so
// the answer says where the body went wrong.
func invalidJSON(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return invalid("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		return invalid("field %q: %v", te.Field, te)
	case errors.Is(err, io.EOF):
		return invalid("empty body")
	case errors.Is(err, ErrInvalid):
		return err
	}
	return invalid("%v", err)
}

// readBatch reads a body in the form json.Marshal writes a Batch
// (`{"alerts":[{…},…]}`, a trailing line break allowed) with ReadJSON,
// several times faster than encoding/json; ok is false for any other form
// or anything ReadJSON declines, and DecodeBatch then decodes the body
// with encoding/json. What it accepts decodes as encoding/json decodes it
// (FuzzDecodeBatchFastPath); the evidence it only delimits is checked by
// Validate, as DecodeBatch does for every alert.
func readBatch(body []byte) (Batch, bool) {
	const head, tail = `{"alerts":[`, `]}`
	for len(body) > 0 && (body[len(body)-1] == '\n' || body[len(body)-1] == '\r') {
		body = body[:len(body)-1]
	}
	if len(body) < len(head)+len(tail)+2 || string(body[:len(head)]) != head || string(body[len(body)-len(tail):]) != tail {
		return Batch{}, false
	}
	s := string(body) // one copy; the alerts' strings are slices of it
	b := Batch{Alerts: make([]Alert, 0, min(MaxBatch, 1+len(body)/512))}
	for i := len(head); ; {
		if len(b.Alerts) == MaxBatch {
			return Batch{}, false // encoding/json reads the rest and DecodeBatch says how many
		}
		_, a, end, _, ok := readObject(body, s, i, false)
		if !ok || end >= len(s) {
			return Batch{}, false
		}
		b.Alerts = append(b.Alerts, a)
		switch s[end] {
		case ',':
			i = end + 1
			continue
		case ']':
			if end+len(tail) != len(s) {
				return Batch{}, false
			}
			return b, true
		}
		return Batch{}, false
	}
}
