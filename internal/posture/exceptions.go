package posture

import (
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"
)

// LoadExceptions reads an exceptions file:
//
//	exceptions:
//	- control: BW-K8S-0004
//	  kind: DaemonSet          # optional glob
//	  namespace: monitoring    # optional glob
//	  name: node-exporter      # optional glob
//	  reason: needs to write its textfile collector directory
//	  expires: 2026-12-31
//
// Every entry needs a control, a reason and an expiry: an exception that
// never expires is a silent hole.
func LoadExceptions(r io.Reader) ([]Exception, error) {
	var f struct {
		Exceptions []Exception `yaml:"exceptions"`
	}
	dec := yaml.NewDecoder(io.LimitReader(r, 4<<20))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("load exceptions: %w", err)
	}
	for i, x := range f.Exceptions {
		switch {
		case x.Control == "":
			return nil, fmt.Errorf("load exceptions: entry %d: no control", i)
		case x.Reason == "":
			return nil, fmt.Errorf("load exceptions: entry %d (%s): no reason", i, x.Control)
		case x.Expires.IsZero():
			return nil, fmt.Errorf("load exceptions: entry %d (%s): no expires date", i, x.Control)
		}
	}
	return f.Exceptions, nil
}
