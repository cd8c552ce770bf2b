package mcp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// JSON-RPC 2.0 error codes the line filter answers with.
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
)

// NewStdioTransport is the agent-facing transport of the stdio wrapper: newline-delimited
// JSON-RPC on r and w, like the SDK's, except that a line that is not JSON or is longer than
// maxLine bytes is answered with a JSON-RPC error (parse error / invalid request) and skipped,
// instead of ending the session. Nothing of such a line reaches the SDK, let alone an upstream.
// The filtering goroutine ends when r reaches EOF or the transport's reader is closed.
func NewStdioTransport(r io.Reader, w io.Writer, maxLine int) sdk.Transport {
	lw := &lockedWriter{w: w}
	pr, pw := io.Pipe()
	go func() { _ = pw.CloseWithError(filterLines(r, pw, lw, maxLine)) }()
	return &sdk.IOTransport{Reader: pr, Writer: lw, MaxLineLength: maxLine + 1}
}

// lockedWriter serialises whole-message writes from the SDK and from the filter.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) Close() error { return nil }

// filterLines copies valid JSON lines from r to out and answers the others on errw. It returns
// nil at EOF.
func filterLines(r io.Reader, out io.Writer, errw io.Writer, maxLine int) error {
	br := bufio.NewReaderSize(r, 64*1024)
	var line []byte
	for {
		var err error
		line, err = readLine(br, line[:0], maxLine)
		switch {
		case errors.Is(err, errLineTooLong):
			if werr := writeError(errw, codeInvalidRequest, fmt.Sprintf("message exceeds %d bytes", maxLine)); werr != nil {
				return werr
			}
			continue
		case err == io.EOF && len(bytes.TrimSpace(line)) == 0:
			return nil
		case err != nil && err != io.EOF:
			return err
		}
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) > 0 {
			if !json.Valid(trimmed) {
				if werr := writeError(errw, codeParseError, "parse error: not JSON"); werr != nil {
					return werr
				}
			} else if _, werr := out.Write(append(trimmed, '\n')); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

var errLineTooLong = errors.New("line too long")

// readLine reads one line (without its newline) into buf, never holding more than max bytes: a
// longer line is consumed to its end and reported as errLineTooLong.
func readLine(br *bufio.Reader, buf []byte, max int) ([]byte, error) {
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > max+1 { // +1: the newline itself
				tooLong, buf = true, buf[:0]
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil:
			if tooLong {
				return buf, errLineTooLong
			}
			return buf, err
		}
		if tooLong {
			return buf[:0], errLineTooLong
		}
		return bytes.TrimSuffix(buf, []byte("\n")), nil
	}
}

func writeError(w io.Writer, code int, msg string) error {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": nil, "error": map[string]any{"code": code, "message": msg}})
	_, err := w.Write(append(b, '\n'))
	return err
}
