package inspect

import (
	"regexp"
	"sync"
)

// lazyRE is a regular expression compiled on first use, so that a process that never inspects
// (every CLI command but inspect, the stdio wrapper before its first call) does not pay for
// compiling the detectors' patterns at start. TestPatternsCompile compiles every one.
type lazyRE struct {
	once sync.Once
	src  string
	re   *regexp.Regexp
}

// lazyPatterns is every pattern declared with lazyRegexp, for TestPatternsCompile.
var lazyPatterns []*lazyRE

func lazyRegexp(src string) *lazyRE {
	l := &lazyRE{src: src}
	lazyPatterns = append(lazyPatterns, l)
	return l
}

func (l *lazyRE) get() *regexp.Regexp {
	l.once.Do(func() { l.re = regexp.MustCompile(l.src) })
	return l.re
}

func (l *lazyRE) FindStringIndex(s string) []int { return l.get().FindStringIndex(s) }
func (l *lazyRE) FindString(s string) string     { return l.get().FindString(s) }
func (l *lazyRE) MatchString(s string) bool      { return l.get().MatchString(s) }
func (l *lazyRE) Match(b []byte) bool            { return l.get().Match(b) }
func (l *lazyRE) FindStringSubmatchIndex(s string) []int {
	return l.get().FindStringSubmatchIndex(s)
}
func (l *lazyRE) FindAllStringSubmatch(s string, n int) [][]string {
	return l.get().FindAllStringSubmatch(s, n)
}
func (l *lazyRE) FindAllStringSubmatchIndex(s string, n int) [][]int {
	return l.get().FindAllStringSubmatchIndex(s, n)
}
func (l *lazyRE) FindAllStringIndex(s string, n int) [][]int {
	return l.get().FindAllStringIndex(s, n)
}
func (l *lazyRE) ReplaceAll(src, repl []byte) []byte { return l.get().ReplaceAll(src, repl) }
func (l *lazyRE) ReplaceAllString(src, repl string) string {
	return l.get().ReplaceAllString(src, repl)
}
func (l *lazyRE) Split(s string, n int) []string { return l.get().Split(s, n) }

// String is the pattern's source.
func (l *lazyRE) String() string { return l.src }
