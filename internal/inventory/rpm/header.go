package rpm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// rpm header tags read here (rpm's lib/rpmtag.h).
const (
	tagName        = 1000
	tagVersion     = 1001
	tagRelease     = 1002
	tagEpoch       = 1003
	tagLicense     = 1014
	tagArch        = 1022
	tagOldFileName = 1027
	tagFileModes   = 1030
	tagSourceRPM   = 1044
	tagDirIndexes  = 1116
	tagBaseNames   = 1117
	tagDirNames    = 1118
)

// rpm header data types (rpm's lib/rpmtag.h, rpmTagType).
const (
	typeInt16       = 3
	typeInt32       = 4
	typeString      = 6
	typeStringArray = 8
	typeI18NString  = 9
)

// entrySize is the size of one index entry: tag, type, offset, count.
const entrySize = 16

// errHeader is wrapped by every header decoding error.
var errHeader = errors.New("bad rpm header")

// header is a decoded rpm header blob, reduced to the tags read here.
type header struct {
	name, version, release, arch, license, sourceRPM string
	epoch                                            int64 // -1 when absent
	// files lists the paths the package installed, with their modes
	// (0 when the header has no FILEMODES).
	files []string
	modes []uint16
}

type indexEntry struct {
	typ, off, count uint32
}

// parseHeader decodes a header blob as rpm stores it in its database: a
// big-endian index count and data length, the index entries, then the data
// store. Every offset and count is checked against the blob; nothing is
// allocated beyond what the blob itself holds.
//
// Only the tags read here are decoded. Entries that repeat a tag (the
// "dribble" entries rpm appends after the immutable region when it updates
// an installed header) override earlier ones, as in rpm's headerImport.
func parseHeader(blob []byte) (*header, error) {
	if len(blob) < 8 {
		return nil, fmt.Errorf("%w: %d bytes", errHeader, len(blob))
	}
	il := binary.BigEndian.Uint32(blob[0:4])
	dl := binary.BigEndian.Uint32(blob[4:8])
	if il == 0 || uint64(il) > uint64(len(blob)-8)/entrySize {
		return nil, fmt.Errorf("%w: %d index entries in %d bytes", errHeader, il, len(blob))
	}
	start := 8 + uint64(il)*entrySize
	if start+uint64(dl) > uint64(len(blob)) {
		return nil, fmt.Errorf("%w: data length %d beyond the blob", errHeader, dl)
	}
	index := blob[8:start]
	data := blob[start : start+uint64(dl)]

	wanted := map[uint32]indexEntry{}
	for i := range il {
		e := index[i*entrySize : (i+1)*entrySize]
		switch tag := binary.BigEndian.Uint32(e[0:4]); tag {
		case tagName, tagVersion, tagRelease, tagEpoch, tagLicense, tagArch,
			tagOldFileName, tagFileModes, tagSourceRPM, tagDirIndexes, tagBaseNames, tagDirNames:
			wanted[tag] = indexEntry{
				typ:   binary.BigEndian.Uint32(e[4:8]),
				off:   binary.BigEndian.Uint32(e[8:12]),
				count: binary.BigEndian.Uint32(e[12:16]),
			}
		}
	}

	h := &header{epoch: -1}
	var err error
	str := func(tag uint32) string {
		e, ok := wanted[tag]
		if !ok || err != nil {
			return ""
		}
		var s []string
		s, err = stringsAt(data, e, 1)
		if err != nil {
			err = fmt.Errorf("tag %d: %w", tag, err)
			return ""
		}
		return s[0]
	}
	h.name = str(tagName)
	h.version = str(tagVersion)
	h.release = str(tagRelease)
	h.arch = str(tagArch)
	h.license = str(tagLicense)
	h.sourceRPM = str(tagSourceRPM)
	if err != nil {
		return nil, err
	}
	if e, ok := wanted[tagEpoch]; ok {
		v, err := int32sAt(data, e)
		if err != nil {
			return nil, fmt.Errorf("tag %d: %w", tagEpoch, err)
		}
		if len(v) > 0 {
			h.epoch = int64(v[0])
		}
	}
	if err := h.readFiles(data, wanted); err != nil {
		return nil, err
	}
	return h, nil
}

// readFiles fills h.files from BASENAMES/DIRNAMES/DIRINDEXES (rpm ≥ 4) or
// OLDFILENAMES (older headers), and h.modes from FILEMODES.
func (h *header) readFiles(data []byte, wanted map[uint32]indexEntry) error {
	if e, ok := wanted[tagBaseNames]; ok {
		base, err := stringsAt(data, e, 0)
		if err != nil {
			return fmt.Errorf("tag %d: %w", tagBaseNames, err)
		}
		de, ok1 := wanted[tagDirNames]
		ie, ok2 := wanted[tagDirIndexes]
		if !ok1 || !ok2 {
			return fmt.Errorf("%w: BASENAMES without DIRNAMES or DIRINDEXES", errHeader)
		}
		dirs, err := stringsAt(data, de, 0)
		if err != nil {
			return fmt.Errorf("tag %d: %w", tagDirNames, err)
		}
		idx, err := int32sAt(data, ie)
		if err != nil {
			return fmt.Errorf("tag %d: %w", tagDirIndexes, err)
		}
		if len(idx) != len(base) {
			return fmt.Errorf("%w: %d BASENAMES, %d DIRINDEXES", errHeader, len(base), len(idx))
		}
		h.files = make([]string, len(base))
		for i, b := range base {
			d := idx[i]
			if d < 0 || int(d) >= len(dirs) {
				return fmt.Errorf("%w: DIRINDEXES[%d] = %d of %d DIRNAMES", errHeader, i, d, len(dirs))
			}
			h.files[i] = dirs[d] + b
		}
	} else if e, ok := wanted[tagOldFileName]; ok {
		names, err := stringsAt(data, e, 0)
		if err != nil {
			return fmt.Errorf("tag %d: %w", tagOldFileName, err)
		}
		h.files = names
	}
	if e, ok := wanted[tagFileModes]; ok && len(h.files) > 0 {
		modes, err := int16sAt(data, e)
		if err != nil {
			return fmt.Errorf("tag %d: %w", tagFileModes, err)
		}
		if len(modes) == len(h.files) {
			h.modes = modes
		}
	}
	return nil
}

// stringsAt reads the strings of a STRING, STRING_ARRAY or I18NSTRING
// entry. want is the number of strings required (0: as many as the entry
// counts); for an I18NSTRING only the first (the untranslated one) matters.
func stringsAt(data []byte, e indexEntry, want uint32) ([]string, error) {
	switch e.typ {
	case typeString, typeStringArray, typeI18NString:
	default:
		return nil, fmt.Errorf("%w: type %d where a string was expected", errHeader, e.typ)
	}
	n := e.count
	if want > 0 {
		if n < want {
			return nil, fmt.Errorf("%w: %d strings, want %d", errHeader, n, want)
		}
		n = want
	}
	// Each string takes at least its NUL byte: a count beyond the data is
	// a lie, refused before anything is allocated for it.
	if uint64(e.off) > uint64(len(data)) || uint64(n) > uint64(len(data))-uint64(e.off) {
		return nil, fmt.Errorf("%w: %d strings at offset %d of %d bytes", errHeader, n, e.off, len(data))
	}
	out := make([]string, 0, n)
	p := data[e.off:]
	for range n {
		i := bytes.IndexByte(p, 0)
		if i < 0 {
			return nil, fmt.Errorf("%w: unterminated string", errHeader)
		}
		out = append(out, string(p[:i]))
		p = p[i+1:]
	}
	return out, nil
}

func int32sAt(data []byte, e indexEntry) ([]int32, error) {
	if e.typ != typeInt32 {
		return nil, fmt.Errorf("%w: type %d where INT32 was expected", errHeader, e.typ)
	}
	if uint64(e.off)+uint64(e.count)*4 > uint64(len(data)) {
		return nil, fmt.Errorf("%w: %d INT32 at offset %d of %d bytes", errHeader, e.count, e.off, len(data))
	}
	out := make([]int32, e.count)
	for i := range out {
		out[i] = int32(binary.BigEndian.Uint32(data[int(e.off)+4*i:]))
	}
	return out, nil
}

func int16sAt(data []byte, e indexEntry) ([]uint16, error) {
	if e.typ != typeInt16 {
		return nil, fmt.Errorf("%w: type %d where INT16 was expected", errHeader, e.typ)
	}
	if uint64(e.off)+uint64(e.count)*2 > uint64(len(data)) {
		return nil, fmt.Errorf("%w: %d INT16 at offset %d of %d bytes", errHeader, e.count, e.off, len(data))
	}
	out := make([]uint16, e.count)
	for i := range out {
		out[i] = binary.BigEndian.Uint16(data[int(e.off)+2*i:])
	}
	return out, nil
}

// evr returns the version the way OSV's RPM ecosystems write it:
// "EPOCH:VERSION-RELEASE", without the epoch when it is 0 or absent.
func (h *header) evr() string {
	vr := h.version
	if h.release != "" {
		vr += "-" + h.release
	}
	if h.epoch > 0 {
		return strconv.FormatInt(h.epoch, 10) + ":" + vr
	}
	return vr
}

// parseSourceRPM splits a SOURCERPM file name
// ("openssl-3.0.7-27.el9.src.rpm") into the source package name and its
// VERSION-RELEASE. ok is false for names that do not have that shape.
func parseSourceRPM(s string) (name, vr string, ok bool) {
	base, found := strings.CutSuffix(s, ".src.rpm")
	if !found {
		base, found = strings.CutSuffix(s, ".nosrc.rpm")
	}
	if !found {
		return "", "", false
	}
	r := strings.LastIndexByte(base, '-')
	if r <= 0 {
		return "", "", false
	}
	v := strings.LastIndexByte(base[:r], '-')
	if v <= 0 {
		return "", "", false
	}
	return base[:v], base[v+1:], true
}
