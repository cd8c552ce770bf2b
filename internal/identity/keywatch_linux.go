package identity

import (
	"errors"
	"syscall"
)

// keyWatch tells whether the key file may have changed, without a system call on the path: an
// inotify instance on the file's inode, read without blocking. The kernel queues an event before
// the writer's write, rename or unlink returns, so a read after that sees it: a revocation by
// another process is seen by the next lookup, as with a stat, at the cost of one read that finds
// nothing instead of a path lookup and a stat structure.
type keyWatch struct {
	fd    int
	armed bool // a watch is on the file as last loaded
	buf   [4096]byte
}

// newKeyWatch returns a watch, or nil when inotify is unavailable (the store then stats).
func newKeyWatch() *keyWatch {
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		return nil
	}
	return &keyWatch{fd: fd}
}

// quiet reports whether nothing happened to the watched file since the last call: armed, and a
// read finds no event. Any event, a full queue or a failed read is "maybe changed".
func (w *keyWatch) quiet() bool {
	if !w.armed {
		return false
	}
	for {
		n, err := syscall.Read(w.fd, w.buf[:])
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return true
		case err != nil || n <= 0:
			w.armed = false
			return false
		}
		// Events: drain the rest so the next call starts empty, and report a change.
		for {
			if n, err := syscall.Read(w.fd, w.buf[:]); n <= 0 || err != nil {
				break
			}
		}
		return false
	}
}

// arm watches the file now at path, before it is read: a change after this is an event, a change
// before it is in what is read. A file that does not exist is not watched (the store stats).
func (w *keyWatch) arm(path string) {
	const mask = syscall.IN_MODIFY | syscall.IN_ATTRIB | syscall.IN_CLOSE_WRITE | syscall.IN_MOVE_SELF | syscall.IN_DELETE_SELF
	_, err := syscall.InotifyAddWatch(w.fd, path, mask)
	w.armed = err == nil
}

// close releases the descriptor once (Close, then the store's cleanup, may both ask).
func (w *keyWatch) close() {
	if w.fd >= 0 {
		syscall.Close(w.fd)
		w.fd, w.armed = -1, false
	}
}
