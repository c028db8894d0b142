package fsutil

import (
	"encoding/json"
	"fmt"
	"io"
)

// DecodeJSONLimited decodes one JSON document of at most limit bytes from
// r into v: the read state files of the sensor and the audit follower
// (outside data once on disk) go through it, so an oversized file is an
// error, never an unbounded read.
func DecodeJSONLimited(r io.Reader, limit int64, v any) error {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return err
	}
	if int64(len(b)) > limit {
		return fmt.Errorf("larger than %d bytes", limit)
	}
	return json.Unmarshal(b, v)
}
