package identity

import (
	"errors"
	"path/filepath"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// keyWatch tells whether the key file may have changed, without a system call on the path: an
// inotify instance on the file's inode, polled without blocking. The kernel queues an event before
// the writer's write, rename or unlink returns, so a poll after that sees it: a revocation by
// another process is seen by the next lookup, as with a stat, at the cost of one poll that finds
// nothing instead of a path lookup and a stat structure. changed may run on many goroutines at
// once (it only looks); quiet, arm and close run under the store's fresh lock.
type keyWatch struct {
	fd    int
	armed atomic.Bool // a watch is on the file as last loaded
	buf   [4096]byte
}

// changed reports whether an event is queued (or the poll failed), leaving it queued: the Lookup
// that goes on to take it (quiet, under the store's lock) reloads before anyone answers.
func (w *keyWatch) changed() bool {
	fds := [1]unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds[:], 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err != nil || n != 0
	}
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
	if !w.armed.Load() {
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
			w.armed.Store(false)
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
// before it is in what is read. A path the watch cannot follow is not watched (the store stats it,
// or on a network filesystem reads it, on every Lookup): one that does not exist, one on a filesystem whose changes may come from
// elsewhere (NFS, SMB, FUSE: inotify sees only this kernel's writes), and one with a symbolic link
// anywhere on it — inotify watches the file the path resolves to, so replacing the link (a write
// and rename over it, an `ln -sfn` swap of a secret mount's directory) changes what the path
// names without an event on the watched file.
func (w *keyWatch) arm(path string) {
	w.armed.Store(false)
	if !watchable(path) {
		return
	}
	const mask = syscall.IN_MODIFY | syscall.IN_ATTRIB | syscall.IN_CLOSE_WRITE | syscall.IN_MOVE_SELF | syscall.IN_DELETE_SELF | syscall.IN_DONT_FOLLOW
	if _, err := syscall.InotifyAddWatch(w.fd, path, mask); err != nil {
		return
	}
	// Made a link between the check and the watch: the watch is on the link, not the file.
	w.armed.Store(watchable(path))
}

// watchable reports whether path names a regular file by no symbolic link, on a local filesystem.
func watchable(path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	if real, err := filepath.EvalSymlinks(abs); err != nil || real != abs {
		return false
	}
	return localFS(abs)
}

// localFS reports whether path is on a filesystem only this kernel writes, so that a stat of it
// is current and a watch on it sees every change. A variable so that tests can stand a local
// directory in for a network mount.
var localFS = func(path string) bool {
	var st syscall.Statfs_t
	if syscall.Statfs(path, &st) != nil {
		return false
	}
	switch uint32(st.Type) {
	case 0xEF53, // ext2, ext3, ext4
		0x58465342, // xfs
		0x9123683E, // btrfs
		0x01021994, // tmpfs
		0x858458F6, // ramfs
		0x794C7630, // overlayfs (a container's root)
		0x2FC12FC1, // zfs
		0xF2F52010: // f2fs
		return true
	}
	return false
}

// close releases the descriptor once (Close, then the store's cleanup, may both ask).
func (w *keyWatch) close() {
	if w.fd >= 0 {
		syscall.Close(w.fd)
		w.fd = -1
		w.armed.Store(false)
	}
}
