//go:build !linux

package identity

import "sync/atomic"

// keyWatch is inotify's on Linux; elsewhere there is none and the store stats the file on every
// lookup.
type keyWatch struct{ armed atomic.Bool }

func newKeyWatch() *keyWatch { return nil }

func (w *keyWatch) quiet() bool   { return false }
func (w *keyWatch) changed() bool { return true }
func (w *keyWatch) arm(string)    {}
func (w *keyWatch) close()        {}
