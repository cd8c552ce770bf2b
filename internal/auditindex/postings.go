package auditindex

import (
	"encoding/binary"
	"math/bits"
)

// A posting blob is a block's offsets, ascending, in one of two forms, whichever is smaller:
// formDeltas, a byte then each offset's difference from the previous one (the first from -1)
// as a uvarint; or formBitmap, a byte then BlockSize bits. A term in every record of a block
// (decision=allow) costs 513 bytes; a rare one a byte or two a record.
const (
	formDeltas = 0
	formBitmap = 1
	bitmapLen  = BlockSize / 8
)

// Encode returns the blob of offs (ascending, distinct, below BlockSize).
func Encode(offs []uint16) []byte {
	if len(offs) >= bitmapLen {
		b := make([]byte, 1+bitmapLen)
		b[0] = formBitmap
		for _, o := range offs {
			b[1+o/8] |= 1 << (o % 8)
		}
		return b
	}
	b := make([]byte, 1, 1+2*len(offs))
	prev := -1
	for _, o := range offs {
		b = binary.AppendUvarint(b, uint64(int(o)-prev))
		prev = int(o)
	}
	return b
}

// Decode appends the offsets of blob to dst, ascending.
func Decode(dst []uint16, blob []byte) ([]uint16, error) {
	if len(blob) == 0 {
		return dst, ErrDamaged
	}
	switch blob[0] {
	case formBitmap:
		if len(blob) != 1+bitmapLen {
			return dst, ErrDamaged
		}
		for i, w := range blob[1:] {
			for w != 0 {
				dst = append(dst, uint16(i*8+bits.TrailingZeros8(w)))
				w &= w - 1
			}
		}
		return dst, nil
	case formDeltas:
		prev := -1
		for b := blob[1:]; len(b) > 0; {
			d, n := binary.Uvarint(b)
			if n <= 0 || d == 0 || d > BlockSize {
				return dst, ErrDamaged
			}
			prev += int(d)
			if prev >= BlockSize {
				return dst, ErrDamaged
			}
			dst = append(dst, uint16(prev))
			b = b[n:]
		}
		return dst, nil
	}
	return dst, ErrDamaged
}

// Merge returns the union of two ascending offset lists.
func Merge(a, b []uint16) []uint16 {
	out := make([]uint16, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// MergeBlob merges offs into a stored blob (nil: none) and returns the new blob.
func MergeBlob(stored []byte, offs []uint16) ([]byte, error) {
	if stored == nil {
		return Encode(offs), nil
	}
	old, err := Decode(nil, stored)
	if err != nil {
		return nil, err
	}
	return Encode(Merge(old, offs)), nil
}

// intersect keeps the offsets of a that are in b (both ascending), in place.
func intersect(a, b []uint16) []uint16 {
	out := a[:0]
	j := 0
	for _, x := range a {
		for j < len(b) && b[j] < x {
			j++
		}
		if j < len(b) && b[j] == x {
			out = append(out, x)
		}
	}
	return out
}
