package ledger

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// ParseRecord's fast reading decodes into recordRead, whose time-valued members shadow the
// record's so that time.Time's parser reads them: a time-valued field of Record that recordRead
// does not shadow would be read by segmentio's more lenient parser alone. This keeps the two
// the same when the format gains a field: every JSON path that holds a time in Record must,
// resolved through recordRead as encoding/json resolves embedded fields (the shallowest name
// wins), hold a stdTime.
func TestRecordTimesCoverRecord(t *testing.T) {
	timeType, stdType := reflect.TypeFor[time.Time](), reflect.TypeFor[stdTime]()
	var paths func(t reflect.Type, prefix string, out *[]string)
	paths = func(t reflect.Type, prefix string, out *[]string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		switch {
		case t == timeType:
			*out = append(*out, prefix+" time.Time")
			return
		case t == stdType:
			*out = append(*out, prefix+" stdTime")
			return
		case t.Kind() != reflect.Struct:
			return
		}
		for name, ft := range jsonFields(t) {
			paths(ft, prefix+"."+name, out)
		}
	}
	var want, got []string
	paths(reflect.TypeFor[Record](), "", &want)
	paths(reflect.TypeFor[recordRead](), "", &got)
	for i, w := range want {
		want[i] = strings.TrimSuffix(w, " time.Time") + " stdTime"
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Fatalf("Record's time fields, as recordRead must read them: %q; recordRead reads %q", want, got)
	}
}

// jsonFields are the JSON members of struct t and their types, embedded structs' fields
// promoted, the shallowest of a name winning.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	type cand struct {
		depth int
		typ   reflect.Type
	}
	best := map[string]cand{}
	var visit func(t reflect.Type, depth int)
	visit = func(t reflect.Type, depth int) {
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch {
			case name == "-":
				continue
			case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
				visit(f.Type, depth+1)
				continue
			case !f.IsExported():
				continue
			case name == "":
				name = f.Name
			}
			if c, ok := best[name]; !ok || depth < c.depth {
				best[name] = cand{depth, f.Type}
			}
		}
	}
	visit(t, 0)
	out := make(map[string]reflect.Type, len(best))
	for n, c := range best {
		out[n] = c.typ
	}
	return out
}
