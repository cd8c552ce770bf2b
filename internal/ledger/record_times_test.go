package ledger

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// ParseRecord reads a record's times again with time.Time's parser (recordTimes): a time-valued
// field of Record that recordTimes does not name would be read by segmentio's more lenient parser
// alone. This keeps the two lists the same when the format gains a field.
func TestRecordTimesCoverRecord(t *testing.T) {
	timeType := reflect.TypeFor[time.Time]()
	var paths func(t reflect.Type, prefix string, out *[]string)
	paths = func(t reflect.Type, prefix string, out *[]string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t == timeType || t == reflect.TypeFor[stdTime]() {
			*out = append(*out, prefix)
			return
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			paths(f.Type, prefix+"."+name, out)
		}
	}
	var want, got []string
	paths(reflect.TypeFor[Record](), "", &want)
	paths(reflect.TypeFor[recordTimes](), "", &got)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Fatalf("Record's time fields %q, recordTimes reads %q", want, got)
	}
}
