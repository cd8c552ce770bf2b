//go:build !linux

package identity

// keyWatch is inotify's on Linux; elsewhere there is none and the store stats the file on every
// lookup.
type keyWatch struct{ armed bool }

func newKeyWatch() *keyWatch { return nil }

func (w *keyWatch) quiet() bool { return false }
func (w *keyWatch) arm(string)  {}
func (w *keyWatch) close()      {}
