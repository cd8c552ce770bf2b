package export

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
)

// JSONL writes one ledger record per line, its bytes exactly as the ledger holds them (they
// carry their own "seq"), to a file or to stdout.
type JSONL struct {
	path     string
	maxBytes int64
	maxFiles int
	w        io.Writer // stdout, when path is "-"
	f        *os.File
	size     int64
	buf      bytes.Buffer
}

// NewJSONL opens path for appending (mode 0600), or stdout when path is "-". With maxBytes > 0
// the file is rotated before a batch would take it past maxBytes: path.1 is the newest old file,
// up to path.<maxFiles>. A file moved away by an outside rotator (logrotate without
// copytruncate) is noticed at the next batch and path is created again.
func NewJSONL(path string, maxBytes int64, maxFiles int, stdout io.Writer) (*JSONL, error) {
	j := &JSONL{path: path, maxBytes: maxBytes, maxFiles: max(maxFiles, 1)}
	if path == "-" {
		j.w = stdout
		return j, nil
	}
	if err := j.open(); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *JSONL) open() error {
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("export file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("export file: %w", err)
	}
	j.f, j.size = f, st.Size()
	return nil
}

// Send writes the batch in one write and syncs the file before the tailer saves its position.
func (j *JSONL) Send(_ context.Context, items []Item) error {
	j.buf.Reset()
	for _, it := range items {
		j.buf.Write(it.Data)
		j.buf.WriteByte('\n')
	}
	if j.w != nil {
		_, err := j.w.Write(j.buf.Bytes())
		return err
	}
	if err := j.reopenIfMoved(); err != nil {
		return err
	}
	if j.maxBytes > 0 && j.size > 0 && j.size+int64(j.buf.Len()) > j.maxBytes {
		if err := j.rotate(); err != nil {
			return err
		}
	}
	before := j.size
	_, err := j.f.Write(j.buf.Bytes())
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		// The batch is sent again: cut what was written of it (a short write on a full disk
		// would leave half a line for the shipper to choke on).
		_ = j.f.Truncate(before)
		return fmt.Errorf("export file: %w", err)
	}
	j.size += int64(j.buf.Len())
	return nil
}

// reopenIfMoved opens path again when the open file is no longer the one at path.
func (j *JSONL) reopenIfMoved() error {
	if j.f != nil {
		cur, err1 := j.f.Stat()
		at, err2 := os.Stat(j.path)
		if err1 == nil && err2 == nil && os.SameFile(cur, at) {
			return nil
		}
		_ = j.f.Close()
		j.f = nil
	}
	return j.open()
}

func (j *JSONL) rotate() error {
	if err := j.f.Close(); err != nil {
		return fmt.Errorf("export file: %w", err)
	}
	j.f = nil
	for i := j.maxFiles - 1; i >= 1; i-- {
		from, to := j.path+"."+strconv.Itoa(i), j.path+"."+strconv.Itoa(i+1)
		if err := os.Rename(from, to); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("export file rotation: %w", err)
		}
	}
	if err := os.Rename(j.path, j.path+".1"); err != nil {
		return fmt.Errorf("export file rotation: %w", err)
	}
	return j.open()
}

// Close closes the file.
func (j *JSONL) Close() error {
	if j.f == nil {
		return nil
	}
	return j.f.Close()
}
