package llm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// sseEvent is one server-sent event: its "event:" name (may be empty) and its data lines
// joined by "\n".
type sseEvent struct {
	name string
	data []byte
}

// ErrEventTooLarge reports an SSE line longer than Config.MaxEventBytes.
var ErrEventTooLarge = errors.New("server-sent event too large")

// sseReader reads events from an upstream stream. It follows the WHATWG event-stream
// grammar for the fields the providers use (event, data; comments and id/retry ignored).
type sseReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

func newSSEReader(r io.Reader, maxLine int) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 64<<10), max: maxLine}
}

// next returns the next complete event. At the end of the stream it returns io.EOF; an
// event cut off by the end of the stream is discarded, as the grammar says.
func (s *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data []byte
	haveData := false
	for {
		line, err := s.line()
		if err != nil {
			return sseEvent{}, err
		}
		if len(line) == 0 {
			if !haveData {
				ev.name = ""
				continue // a blank line with no data dispatches nothing
			}
			ev.data = data
			return ev, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			ev.name = string(value)
		case "data":
			if haveData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			haveData = true
		}
	}
}

// line reads one line without its terminator (\n or \r\n), bounded by max.
func (s *sseReader) line() ([]byte, error) {
	s.buf = s.buf[:0]
	for {
		chunk, err := s.r.ReadSlice('\n')
		s.buf = append(s.buf, chunk...)
		if len(s.buf) > s.max {
			return nil, fmt.Errorf("read stream: %w (more than %d bytes)", ErrEventTooLarge, s.max)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(s.buf) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	l := s.buf[:len(s.buf)-1]
	return bytes.TrimSuffix(l, []byte("\r")), nil
}

// sseWriter writes events to the agent, flushing each one: text deltas are never buffered.
type sseWriter struct {
	w    io.Writer
	rc   *http.ResponseController
	buf  []byte
	err  error
	last time.Time // when the agent was last sent anything
}

func newSSEWriter(w http.ResponseWriter) *sseWriter {
	return &sseWriter{w: w, rc: http.NewResponseController(w), last: time.Now()}
}

// comment writes an SSE comment line, which clients ignore: a keep-alive.
func (s *sseWriter) comment(text string) {
	if s.err != nil {
		return
	}
	_, s.err = io.WriteString(s.w, ": "+text+"\n\n")
	s.last = time.Now()
}

// write writes one event (without flushing).
func (s *sseWriter) write(ev sseEvent) {
	if s.err != nil {
		return
	}
	b := s.buf[:0]
	if ev.name != "" {
		b = append(b, "event: "...)
		b = append(b, ev.name...)
		b = append(b, '\n')
	}
	for line := range bytes.SplitSeq(ev.data, []byte("\n")) {
		b = append(b, "data: "...)
		b = append(b, line...)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	s.buf = b
	_, s.err = s.w.Write(b)
	s.last = time.Now()
}

// flush sends what was written to the agent now.
func (s *sseWriter) flush() {
	if s.err != nil {
		return
	}
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.err = err
	}
}
