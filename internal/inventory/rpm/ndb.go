package rpm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// NDB layout, as rpm's lib/backend/ndb/rpmpkg.c writes Packages.db: a
// 32-byte header, SlotNPages pages of 4 KiB holding 16-byte slots (the
// header takes the first two), and blobs addressed in 16-byte blocks, each
// a 16-byte blob header followed by the rpm header blob.
const (
	ndbHeaderMagic  = 'R' | 'p'<<8 | 'm'<<16 | 'P'<<24
	ndbSlotMagic    = 'S' | 'l'<<8 | 'o'<<16 | 't'<<24
	ndbBlobMagic    = 'B' | 'l'<<8 | 'b'<<16 | 'S'<<24
	ndbVersion      = 0
	ndbSlotPageSize = 4096
	ndbSlotSize     = 16
	ndbBlockSize    = 16
	ndbBlobHeadSize = 16
	ndbMaxSlotPages = 2048 // as go-rpmdb and rpm bound it
	ndbHeaderSlots  = 2
)

var errNDB = errors.New("bad NDB file")

func isNDB(head []byte) bool {
	return len(head) >= 4 && binary.LittleEndian.Uint32(head) == ndbHeaderMagic
}

// readNDB calls fn with every package blob of an NDB database. Offsets and
// lengths are checked against the file before anything is read or
// allocated.
func readNDB(ctx context.Context, r io.ReaderAt, size int64, fn func([]byte) error) error {
	var hdr [32]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	if binary.LittleEndian.Uint32(hdr[0:]) != ndbHeaderMagic || binary.LittleEndian.Uint32(hdr[4:]) != ndbVersion {
		return fmt.Errorf("%w: header", errNDB)
	}
	slotPages := uint64(binary.LittleEndian.Uint32(hdr[12:]))
	if slotPages == 0 || slotPages > ndbMaxSlotPages || slotPages*ndbSlotPageSize > uint64(size) {
		return fmt.Errorf("%w: %d slot pages in a %d-byte file", errNDB, slotPages, size)
	}
	slots := make([]byte, slotPages*ndbSlotPageSize)
	if _, err := r.ReadAt(slots, 0); err != nil {
		return fmt.Errorf("read slots: %w", err)
	}
	for i := uint64(ndbHeaderSlots); i < slotPages*ndbSlotPageSize/ndbSlotSize; i++ {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		s := slots[i*ndbSlotSize:]
		if binary.LittleEndian.Uint32(s[0:]) != ndbSlotMagic {
			return fmt.Errorf("%w: slot %d: bad magic", errNDB, i)
		}
		pkgIndex := binary.LittleEndian.Uint32(s[4:])
		if pkgIndex == 0 {
			continue // free slot
		}
		off := uint64(binary.LittleEndian.Uint32(s[8:])) * ndbBlockSize
		if off < uint64(len(slots)) || off+ndbBlobHeadSize > uint64(size) {
			return fmt.Errorf("%w: slot %d: blob at %d in a %d-byte file", errNDB, i, off, size)
		}
		var bh [ndbBlobHeadSize]byte
		if _, err := r.ReadAt(bh[:], int64(off)); err != nil {
			return fmt.Errorf("read blob of slot %d: %w", i, err)
		}
		if binary.LittleEndian.Uint32(bh[0:]) != ndbBlobMagic {
			return fmt.Errorf("%w: slot %d: bad blob magic", errNDB, i)
		}
		if binary.LittleEndian.Uint32(bh[4:]) != pkgIndex {
			return fmt.Errorf("%w: slot %d: blob of another package", errNDB, i)
		}
		n := uint64(binary.LittleEndian.Uint32(bh[12:]))
		if off+ndbBlobHeadSize+n > uint64(size) {
			return fmt.Errorf("%w: slot %d: blob of %d bytes beyond the file", errNDB, i, n)
		}
		blob := make([]byte, n)
		if _, err := r.ReadAt(blob, int64(off+ndbBlobHeadSize)); err != nil {
			return fmt.Errorf("read blob of slot %d: %w", i, err)
		}
		if err := fn(blob); err != nil {
			return err
		}
	}
	return nil
}
