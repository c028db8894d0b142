package rpm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Berkeley DB hash database layout, as rpm ≤ 4.15 writes Packages
// (libdb's dbinc/db_page.h; go-rpmdb's pkg/bdb reads the same).
const (
	bdbHashMagic        = 0x00061561
	bdbPageHeaderSize   = 26
	bdbHashMetaPage     = 8
	bdbHashUnsortedPage = 2 // hash pages written before libdb 4.6 (RHEL/CentOS 5)
	bdbHashPage         = 13
	bdbOverflowPage     = 7
	bdbHOffPage         = 3 // an item stored on overflow pages
	bdbHOffPageSize     = 12
)

// errBDB is wrapped by every Berkeley DB structure error.
var errBDB = errors.New("bad Berkeley DB file")

// isBDB reports whether the first 512 bytes look like a Berkeley DB hash
// database, in either byte order.
func isBDB(head []byte) bool {
	if len(head) < 72 {
		return false
	}
	return binary.LittleEndian.Uint32(head[12:16]) == bdbHashMagic ||
		binary.BigEndian.Uint32(head[12:16]) == bdbHashMagic
}

type bdbPage struct {
	next       uint32
	entries    uint16
	freeOffset uint16 // on overflow pages: the bytes of data on the page
	typ        uint8
}

// readBDB calls fn with every value stored in the hash database: one rpm
// header blob per installed package. Every page number, entry offset and
// overflow chain is checked against the file, and a chain may visit each
// page at most once, so a damaged or hostile file ends in an error, never
// in a loop or an oversized allocation.
func readBDB(ctx context.Context, r io.ReaderAt, size int64, fn func([]byte) error) error {
	meta := make([]byte, 512)
	if _, err := r.ReadAt(meta, 0); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read metadata page: %w", err)
	}
	var order binary.ByteOrder = binary.LittleEndian
	if binary.LittleEndian.Uint32(meta[12:16]) != bdbHashMagic {
		order = binary.BigEndian
	}
	if order.Uint32(meta[12:16]) != bdbHashMagic {
		return fmt.Errorf("%w: not a hash database", errBDB)
	}
	pageSize := order.Uint32(meta[20:24])
	switch pageSize {
	case 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536:
	default:
		return fmt.Errorf("%w: page size %d", errBDB, pageSize)
	}
	if meta[24] != 0 {
		return fmt.Errorf("%w: encrypted", errBDB)
	}
	if meta[25] != bdbHashMetaPage {
		return fmt.Errorf("%w: metadata page type %d", errBDB, meta[25])
	}
	// LastPageNo is trusted only as far as the file goes; the pages that
	// are there are read, and the truncation reported.
	pages := uint64(order.Uint32(meta[32:36])) + 1
	var truncated error
	if inFile := uint64(size) / uint64(pageSize); pages > inFile {
		truncated = fmt.Errorf("%w: truncated: %d of %d pages", errBDB, inFile, pages)
		pages = inFile
	}

	page := make([]byte, pageSize)
	ovf := make([]byte, pageSize)
	// Each overflow page belongs to one item: marking them keeps the total
	// work proportional to the file, whatever the entries point at.
	used := make([]bool, pages)
	readPage := func(buf []byte, n uint64) (bdbPage, error) {
		if n >= pages {
			return bdbPage{}, fmt.Errorf("%w: page %d beyond the last page %d", errBDB, n, pages-1)
		}
		if _, err := r.ReadAt(buf, int64(n)*int64(pageSize)); err != nil {
			return bdbPage{}, fmt.Errorf("read page %d: %w", n, err)
		}
		return bdbPage{
			next:       order.Uint32(buf[16:20]),
			entries:    order.Uint16(buf[20:22]),
			freeOffset: order.Uint16(buf[22:24]),
			typ:        buf[25],
		}, nil
	}

	for n := uint64(1); n < pages; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hp, err := readPage(page, n)
		if err != nil {
			return err
		}
		if hp.typ != bdbHashPage && hp.typ != bdbHashUnsortedPage {
			continue
		}
		// The index holds pairs of 2-byte offsets, key then value.
		if hp.entries%2 != 0 || bdbPageHeaderSize+2*uint64(hp.entries) > uint64(pageSize) {
			return fmt.Errorf("%w: page %d has %d entries", errBDB, n, hp.entries)
		}
		for i := uint64(1); i < uint64(hp.entries); i += 2 {
			off := uint64(order.Uint16(page[bdbPageHeaderSize+2*i:]))
			if off >= uint64(pageSize) {
				return fmt.Errorf("%w: page %d entry %d at offset %d", errBDB, n, i, off)
			}
			if page[off] != bdbHOffPage {
				// Small items are stored on the page itself; rpm headers
				// never are.
				continue
			}
			if off+bdbHOffPageSize > uint64(pageSize) {
				return fmt.Errorf("%w: page %d entry %d overruns the page", errBDB, n, i)
			}
			first := uint64(order.Uint32(page[off+4:]))
			length := uint64(order.Uint32(page[off+8:]))
			if length > uint64(size) {
				return fmt.Errorf("%w: page %d entry %d: item of %d bytes in a %d-byte file", errBDB, n, i, length, size)
			}
			value, err := readOverflow(readPage, ovf, used, first, length)
			if err != nil {
				return fmt.Errorf("page %d entry %d: %w", n, i, err)
			}
			if err := fn(value); err != nil {
				return err
			}
		}
	}
	return truncated
}

// readOverflow concatenates an item stored on a chain of overflow pages.
// used marks the pages already read as part of an item: a page met twice
// (a cycle, or two items sharing pages) is an error.
//
// The value is allocated at the length the entry declares (at most the
// file's size, checked by the caller): items that read whole own disjoint
// page chains, so together they cannot exceed the file, and the first item
// whose chain falls short ends the read.
func readOverflow(readPage func([]byte, uint64) (bdbPage, error), buf []byte, used []bool, first, length uint64) ([]byte, error) {
	value := make([]byte, 0, length)
	for pn := first; pn != 0; {
		if pn >= uint64(len(used)) {
			return nil, fmt.Errorf("%w: overflow page %d beyond the last page %d", errBDB, pn, len(used)-1)
		}
		if used[pn] {
			return nil, fmt.Errorf("%w: overflow page %d used twice", errBDB, pn)
		}
		used[pn] = true
		op, err := readPage(buf, pn)
		if err != nil {
			return nil, err
		}
		if op.typ != bdbOverflowPage {
			return nil, fmt.Errorf("%w: overflow chain reaches page %d of type %d", errBDB, pn, op.typ)
		}
		chunk := buf[bdbPageHeaderSize:]
		if op.next == 0 {
			// On the last page, the free-area offset holds the length
			// of the data on it.
			if uint64(op.freeOffset) > uint64(len(chunk)) {
				return nil, fmt.Errorf("%w: overflow page %d holds %d bytes", errBDB, pn, op.freeOffset)
			}
			chunk = chunk[:op.freeOffset]
		}
		if uint64(len(value))+uint64(len(chunk)) > length {
			return nil, fmt.Errorf("%w: overflow chain longer than its item (%d bytes)", errBDB, length)
		}
		value = append(value, chunk...)
		pn = uint64(op.next)
	}
	if uint64(len(value)) != length {
		return nil, fmt.Errorf("%w: overflow chain holds %d of %d bytes", errBDB, len(value), length)
	}
	return value, nil
}
