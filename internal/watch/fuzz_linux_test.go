package watch

import (
	"encoding/binary"
	"testing"
)

func inotifyRecord(wd int32, mask uint32, name string, pad int) []byte {
	b := make([]byte, 16+len(name)+pad)
	binary.NativeEndian.PutUint32(b[0:], uint32(wd))
	binary.NativeEndian.PutUint32(b[4:], mask)
	binary.NativeEndian.PutUint32(b[12:], uint32(len(name)+pad))
	copy(b[16:], name)
	return b
}

func FuzzParseInotify(f *testing.F) {
	f.Add(inotifyRecord(1, 0x8, "p.yaml", 2))
	f.Add(append(inotifyRecord(1, 0x2, "a.yaml", 0), inotifyRecord(2, 0x80, "..data", 10)...))
	f.Add(inotifyRecord(-1, 0x4000, "", 0))
	f.Add([]byte{1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255})
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, buf []byte) {
		evs, err := parseInotify(buf)
		total := 0
		for _, e := range evs {
			total += 16 + len(e.name)
			for i := 0; i < len(e.name); i++ {
				if e.name[i] == 0 {
					t.Fatalf("name %q keeps a NUL", e.name)
				}
			}
		}
		if total > len(buf) {
			t.Fatalf("decoded %d bytes from %d", total, len(buf))
		}
		if err == nil && len(buf) > 0 && len(evs) == 0 {
			t.Fatal("a non-empty buffer decoded to nothing without an error")
		}
	})
}
