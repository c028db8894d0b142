package vulndb

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// The index file is one flat little-endian buffer, mapped read-only by
// Open:
//
//	header   64 bytes: magic, format version, CRC-32C of the rest, counts and
//	         section offsets (all uint32)
//	strings  uvarint length + bytes, deduplicated; a reference is an offset
//	         (0 is the empty string)
//	keys     nKeys × 16 bytes, sorted by (ecosystem, name):
//	         ecosystemRef, nameRef, firstEntry (offset in data), entryCount
//	vulns    nVulns × 16 bytes: idRef, aliasesOff, detailsOff, detailsLen
//	data     affected entries (varint-encoded intervals, listed versions,
//	         Go imports with their platforms and symbols), alias lists
//	         (string refs, for de-duplication) and each vulnerability's
//	         details, decoded only when it matches
//	meta     JSON: build time and source statuses, for Status
//
// Nothing is decoded at Open beyond the header: a lookup is a binary search
// over keys; its entries are read in place.
const (
	indexMagic   = "BWVDB\x00\r\n"
	indexVersion = 2 // 2: Go imports (platforms, symbols) in affected entries
	headerSize   = 64
	keySize      = 16
	vulnSize     = 16
)

// SchemaVersion is the version of the on-disk index format.
const SchemaVersion = indexVersion

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// interval flags in the index.
const (
	ivLo = 1 << iota
	ivLoExcl
	ivHi
	ivHiIncl
	ivFix
	ivSemver
)

type indexMeta struct {
	Built   time.Time      `json:"built"`
	Sources []SourceStatus `json:"sources"`
}

type strTable struct {
	buf  bytes.Buffer
	refs map[string]uint32
}

func newStrTable() *strTable {
	t := &strTable{refs: map[string]uint32{"": 0}}
	t.buf.WriteByte(0)
	return t
}

func (t *strTable) ref(s string) uint32 {
	if r, ok := t.refs[s]; ok {
		return r
	}
	r := uint32(t.buf.Len())
	t.buf.Write(binary.AppendUvarint(nil, uint64(len(s))))
	t.buf.WriteString(s)
	t.refs[s] = r
	return r
}

type buildEntry struct {
	eco, name uint32 // base ecosystem and normalised name (the key)
	data      []byte
}

// buildIndex compiles sources into an index file image.
func buildIndex(sources []*sourceData, built time.Time) ([]byte, error) {
	kev := map[string]KEV{}
	cves := map[string]cveInfo{}
	epss := map[string]float64{}
	meta := indexMeta{Built: built.UTC()}
	for _, s := range sources {
		meta.Sources = append(meta.Sources, s.Status)
		for k, v := range s.KEV {
			kev[k] = v
		}
		for k, v := range s.CVE {
			cves[k] = v
		}
		for k, v := range s.EPSS {
			epss[k] = v
		}
	}

	strs := newStrTable()
	var data bytes.Buffer
	data.WriteByte(0) // offset 0 is never a valid entry
	var vulns []byte
	var entries []buildEntry
	nv := uint32(0)
	for _, s := range sources {
		for _, r := range s.Records {
			v := enrich(r, s.Status.Name, kev, cves, epss)
			ids := append([]string{v.ID}, v.Aliases...)
			aliasOff := uint32(data.Len())
			data.Write(binary.AppendUvarint(nil, uint64(len(ids))))
			for _, id := range ids {
				data.Write(binary.AppendUvarint(nil, uint64(strs.ref(id))))
			}
			det := encodeVuln(nil, v)
			detOff := uint32(data.Len())
			data.Write(det)
			vulns = binary.LittleEndian.AppendUint32(vulns, strs.ref(v.ID))
			vulns = binary.LittleEndian.AppendUint32(vulns, aliasOff)
			vulns = binary.LittleEndian.AppendUint32(vulns, detOff)
			vulns = binary.LittleEndian.AppendUint32(vulns, uint32(len(det)))
			for _, a := range r.Affected {
				base, rel := splitEcosystem(a.Ecosystem)
				relKey := ""
				if familyOf(base) != notOS {
					relKey = releaseKey(base, rel)
				}
				e := binary.AppendUvarint(nil, uint64(nv))
				e = binary.AppendUvarint(e, uint64(strs.ref(a.Ecosystem)))
				e = binary.AppendUvarint(e, uint64(strs.ref(relKey)))
				e = binary.AppendUvarint(e, uint64(len(a.Ranges)))
				for _, iv := range a.Ranges {
					var fl byte
					if iv.Lo != "" {
						fl |= ivLo
					}
					if iv.LoExcl {
						fl |= ivLoExcl
					}
					if iv.Hi != "" {
						fl |= ivHi
					}
					if iv.HiIncl {
						fl |= ivHiIncl
					}
					if iv.Fix != "" {
						fl |= ivFix
					}
					if iv.Semver {
						fl |= ivSemver
					}
					e = append(e, fl)
					for _, s := range []string{iv.Lo, iv.Hi, iv.Fix} {
						if s != "" {
							e = binary.AppendUvarint(e, uint64(strs.ref(s)))
						}
					}
				}
				e = binary.AppendUvarint(e, uint64(len(a.Versions)))
				for _, ver := range a.Versions {
					e = binary.AppendUvarint(e, uint64(strs.ref(ver)))
				}
				e = binary.AppendUvarint(e, uint64(len(a.Imports)))
				for _, imp := range a.Imports {
					e = binary.AppendUvarint(e, uint64(strs.ref(imp.Path)))
					for _, list := range [][]string{imp.GOOS, imp.GOARCH, imp.Symbols} {
						e = binary.AppendUvarint(e, uint64(len(list)))
						for _, x := range list {
							e = binary.AppendUvarint(e, uint64(strs.ref(x)))
						}
					}
				}
				entries = append(entries, buildEntry{eco: strs.ref(base), name: strs.ref(normalizeName(base, a.Name)), data: e})
			}
			nv++
		}
	}
	str := strs.buf.Bytes()
	keyStr := func(ref uint32) []byte { b, _ := readStr(str, ref); return b }
	sort.SliceStable(entries, func(i, j int) bool {
		if c := bytes.Compare(keyStr(entries[i].eco), keyStr(entries[j].eco)); c != 0 {
			return c < 0
		}
		return bytes.Compare(keyStr(entries[i].name), keyStr(entries[j].name)) < 0
	})
	var keys []byte
	nk := uint32(0)
	for i := 0; i < len(entries); {
		j := i
		first := uint32(data.Len())
		for j < len(entries) && entries[j].eco == entries[i].eco && entries[j].name == entries[i].name {
			data.Write(entries[j].data)
			j++
		}
		keys = binary.LittleEndian.AppendUint32(keys, entries[i].eco)
		keys = binary.LittleEndian.AppendUint32(keys, entries[i].name)
		keys = binary.LittleEndian.AppendUint32(keys, first)
		keys = binary.LittleEndian.AppendUint32(keys, uint32(j-i))
		nk++
		i = j
	}
	mj, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("build index: %w", err)
	}
	total := headerSize + len(str) + len(keys) + len(vulns) + data.Len() + len(mj)
	if total > math.MaxUint32 {
		return nil, fmt.Errorf("build index: %d bytes is over the 4 GiB format limit", total)
	}
	out := make([]byte, headerSize, total)
	copy(out, indexMagic)
	le := binary.LittleEndian
	le.PutUint32(out[8:], indexVersion)
	le.PutUint32(out[16:], nk)
	le.PutUint32(out[20:], nv)
	put := func(at int, b []byte) {
		le.PutUint32(out[at:], uint32(len(out)))
		le.PutUint32(out[at+4:], uint32(len(b)))
		out = append(out, b...)
	}
	put(24, str)
	put(32, keys)
	put(40, vulns)
	put(48, data.Bytes())
	put(56, mj)
	le.PutUint32(out[12:], crc32.Checksum(out[headerSize:], castagnoli))
	return out, nil
}

// enrich turns a stored record into the Vulnerability reported for it:
// KEV, CVSS (only when the record has none) and EPSS come from the CVEs it
// is an alias of (or, failing those, the CVEs it lists as related);
// severity is the record's own rating, else the highest CVSS score.
func enrich(r *record, source string, kev map[string]KEV, cves map[string]cveInfo, epss map[string]float64) *Vulnerability {
	v := &Vulnerability{
		ID: r.ID, Aliases: sortedUnique(r.Aliases), Related: sortedUnique(r.Related),
		Summary: r.Summary, Details: r.Details, Severity: r.Severity, CVSS: slices.Clone(r.CVSS),
		Published: r.Published, Modified: r.Modified, References: r.References, Source: source,
	}
	var ids []string
	for _, id := range append([]string{r.ID}, r.Aliases...) {
		if strings.HasPrefix(id, "CVE-") {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		for _, id := range r.Related {
			if strings.HasPrefix(id, "CVE-") {
				ids = append(ids, id)
			}
		}
	}
	ids = sortedUnique(ids)
	for _, id := range ids {
		if k, ok := kev[id]; ok && v.KEV == nil {
			k := k
			v.KEV = &k
		}
		v.EPSS = max(v.EPSS, epss[id])
	}
	if len(v.CVSS) == 0 {
		// Keep the highest-scored vector per assigner: an advisory fixing
		// forty CVEs should not carry eighty vectors.
		best := map[string]CVSS{}
		for _, id := range ids {
			for _, c := range cves[id].CVSS {
				if b, ok := best[c.Source]; !ok || c.Score > b.Score {
					best[c.Source] = c
				}
			}
		}
		for _, c := range best {
			v.CVSS = append(v.CVSS, c)
		}
		slices.SortFunc(v.CVSS, func(a, b CVSS) int {
			if a.Score != b.Score {
				if a.Score > b.Score {
					return -1
				}
				return 1
			}
			return strings.Compare(a.Source, b.Source)
		})
	}
	if v.Summary == "" && v.Details == "" && len(ids) == 1 {
		v.Details = cves[ids[0]].Description
	}
	if v.Published.IsZero() && len(ids) == 1 {
		v.Published = cves[ids[0]].Published
	}
	if v.Severity == SeverityUnknown {
		v.Severity = SeverityFromScore(maxScore(v.CVSS))
	}
	return v
}

func sortedUnique(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// --- varint helpers shared by the writer and the reader ------------------

// errShort is wrapped into ErrCorruptIndex by readers.
var errShort = errors.New("truncated")

// readStr reads the string at ref in the strings section without copying.
func readStr(str []byte, ref uint32) ([]byte, error) {
	if uint64(ref) >= uint64(len(str)) {
		return nil, errShort
	}
	n, k := binary.Uvarint(str[ref:])
	if k <= 0 || n > uint64(len(str))-uint64(ref)-uint64(k) {
		return nil, errShort
	}
	s := str[int(ref)+k:]
	return s[:n], nil
}

// dec reads varint-encoded data; the first error sticks and every read
// after it returns zero values, so decoders check once at the end.
type dec struct {
	b   []byte
	err error
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *dec) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// count reads a list length that must be plausible for the bytes left (each
// element takes at least one byte), so a corrupt count cannot drive a huge
// allocation.
func (d *dec) count() int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = errShort
		return 0
	}
	return int(n)
}

func (d *dec) str() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *dec) strs() []string {
	n := d.count()
	if n == 0 || d.err != nil {
		return nil
	}
	out := make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, d.str())
	}
	return out
}

func (d *dec) u64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *dec) time() time.Time {
	if d.byte() == 0 || d.err != nil {
		return time.Time{}
	}
	sec := int64(d.u64())
	nsec := d.uvarint()
	if nsec >= 1e9 {
		d.err = errShort
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrs(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendStr(b, s)
	}
	return b
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.LittleEndian.AppendUint64(b, uint64(t.Unix()))
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// encodeVuln writes a Vulnerability's details; decodeVuln reads them back.
func encodeVuln(b []byte, v *Vulnerability) []byte {
	b = appendStr(b, v.ID)
	b = appendStrs(b, v.Aliases)
	b = appendStrs(b, v.Related)
	b = appendStr(b, v.Summary)
	b = appendStr(b, v.Details)
	b = append(b, byte(v.Severity))
	b = binary.AppendUvarint(b, uint64(len(v.CVSS)))
	for _, c := range v.CVSS {
		b = appendStr(b, c.Version)
		b = appendStr(b, c.Vector)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.Score))
		b = appendStr(b, c.Source)
	}
	b = appendTime(b, v.Published)
	b = appendTime(b, v.Modified)
	if v.KEV == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendStr(b, v.KEV.DateAdded)
		b = appendStr(b, v.KEV.DueDate)
		b = appendStr(b, v.KEV.RansomwareUse)
		b = appendStr(b, v.KEV.RequiredAction)
	}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.EPSS))
	b = appendStrs(b, v.References)
	return appendStr(b, v.Source)
}

func decodeVuln(b []byte) (*Vulnerability, error) {
	d := &dec{b: b}
	v := &Vulnerability{}
	v.ID = d.str()
	v.Aliases = d.strs()
	v.Related = d.strs()
	v.Summary = d.str()
	v.Details = d.str()
	sev := Severity(d.byte())
	if sev < SeverityUnknown || sev > SeverityCritical {
		sev = SeverityUnknown
	}
	v.Severity = sev
	if n := d.count(); n > 0 {
		v.CVSS = make([]CVSS, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			c := CVSS{Version: d.str(), Vector: d.str()}
			c.Score = math.Float64frombits(d.u64())
			c.Source = d.str()
			v.CVSS = append(v.CVSS, c)
		}
	}
	v.Published = d.time()
	v.Modified = d.time()
	if d.byte() == 1 {
		v.KEV = &KEV{DateAdded: d.str(), DueDate: d.str(), RansomwareUse: d.str(), RequiredAction: d.str()}
	}
	v.EPSS = math.Float64frombits(d.u64())
	v.References = d.strs()
	v.Source = d.str()
	if d.err != nil {
		return nil, d.err
	}
	return v, nil
}
