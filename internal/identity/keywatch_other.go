//go:build !linux

package identity

import "sync/atomic"

// keyWatch is inotify's on Linux; elsewhere there is none and the store reads the file on every
// lookup.
type keyWatch struct{ armed atomic.Bool }

func newKeyWatch() *keyWatch { return nil }

// localFS cannot tell a network filesystem here, so it says none is local: every lookup reads
// the key file, which a client must revalidate on open, rather than trust a cached stat.
var localFS = func(string) bool { return false }

func (w *keyWatch) quiet() bool   { return false }
func (w *keyWatch) changed() bool { return true }
func (w *keyWatch) arm(string)    {}
func (w *keyWatch) close()        {}
