package watch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// On Linux the watcher talks to inotify itself: it needs IN_CLOSE_WRITE (a writer finished) next
// to IN_MODIFY (a writer is at work), which the portable watcher does not offer.
const inotifyMask = unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_CREATE | unix.IN_DELETE |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

type inotify struct {
	f    *os.File
	dirs map[int32]string
	evs  chan event
	errs chan error
	once sync.Once
	done chan struct{}
	// held counts events read from the kernel and not yet handed to the loop.
	held atomic.Int64
}

func newSource(dirs []string) (source, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify init: %w", err)
	}
	s := &inotify{dirs: map[int32]string{}, evs: make(chan event, 64), errs: make(chan error, 4), done: make(chan struct{})}
	for _, d := range dirs {
		wd, err := unix.InotifyAddWatch(fd, d, inotifyMask)
		if err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("inotify watch %s: %w", d, err)
		}
		s.dirs[int32(wd)] = filepath.Clean(d)
	}
	// A non-blocking descriptor goes to the runtime poller, so Close wakes the blocked Read.
	s.f = os.NewFile(uintptr(fd), "inotify")
	go s.run()
	return s, nil
}

func (s *inotify) events() <-chan event { return s.evs }
func (s *inotify) errors() <-chan error { return s.errs }

func (s *inotify) pending() bool {
	if s.held.Load() > 0 || len(s.evs) > 0 {
		return true
	}
	// Bytes the kernel has queued and the reader has not read yet (FIONREAD, spelled TIOCINQ
	// in x/sys). Not through Fd(): that would make the descriptor blocking, and Close would no
	// longer wake the reader.
	rc, err := s.f.SyscallConn()
	if err != nil {
		return true
	}
	n, ierr := 0, error(nil)
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }); err != nil {
		return true
	}
	return ierr != nil || n > 0
}

func (s *inotify) close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.f.Close()
	})
	return err
}

func (s *inotify) run() {
	defer close(s.evs)
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := s.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				s.report(fmt.Errorf("inotify read: %w", err))
			}
			return
		}
		raw, err := parseInotify(buf[:n])
		s.held.Add(int64(len(raw)))
		for i, r := range raw {
			ev, rerr := s.translate(r)
			if rerr != nil {
				s.report(rerr)
			}
			if ev.path == "" && ev.op != opOverflow {
				s.held.Add(-1)
				continue
			}
			select {
			case s.evs <- ev:
				s.held.Add(-1)
			case <-s.done:
				s.held.Add(-int64(len(raw) - i))
				return
			}
		}
		if err != nil {
			s.report(err)
		}
	}
}

func (s *inotify) report(err error) {
	select {
	case s.errs <- err:
	default: // the loop reports errors as they come; a full queue means it already has some
	}
}

// translate turns one inotify record into the loop's terms.
func (s *inotify) translate(r rawEvent) (event, error) {
	if r.mask&unix.IN_Q_OVERFLOW != 0 {
		return event{op: opOverflow}, errors.New("inotify queue overflowed; events were lost")
	}
	dir, ok := s.dirs[r.wd]
	if !ok {
		return event{}, nil
	}
	if r.mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED) != 0 {
		return event{}, fmt.Errorf("watched directory %s was removed or moved; only the periodic check remains", dir)
	}
	if r.name == "" {
		return event{}, nil
	}
	ev := event{path: filepath.Join(dir, r.name), op: opChange}
	switch {
	case r.mask&unix.IN_CLOSE_WRITE != 0:
		ev.op = opClose
	case r.mask&unix.IN_MODIFY != 0:
		ev.op = opWrite
	}
	return ev, nil
}

// rawEvent is one struct inotify_event.
type rawEvent struct {
	wd   int32
	mask uint32
	name string
}

// errShortEvent reports a buffer that does not hold the events its headers announce.
var errShortEvent = errors.New("inotify: truncated event")

// parseInotify decodes the records of one read: a 16-byte header (wd, mask, cookie, len) and len
// bytes of NUL-padded name each. It never reads past buf and returns what it decoded before a
// malformed record.
func parseInotify(buf []byte) ([]rawEvent, error) {
	var out []rawEvent
	for len(buf) > 0 {
		if len(buf) < unix.SizeofInotifyEvent {
			return out, errShortEvent
		}
		wd := int32(binary.NativeEndian.Uint32(buf[0:4]))
		mask := binary.NativeEndian.Uint32(buf[4:8])
		n := binary.NativeEndian.Uint32(buf[12:16])
		buf = buf[unix.SizeofInotifyEvent:]
		if uint64(n) > uint64(len(buf)) {
			return out, errShortEvent
		}
		name := buf[:n]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		out = append(out, rawEvent{wd: wd, mask: mask, name: string(name)})
		buf = buf[n:]
	}
	return out, nil
}
