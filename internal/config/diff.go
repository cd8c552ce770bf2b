package config

import (
	"reflect"
	"sort"
	"strings"
)

// Changed returns the key paths whose values differ between a and b ("listen",
// "limits.max_body_bytes", "mcp.upstreams"), to the depth of nested settings: lists and maps are
// compared whole and named once.
func Changed(a, b *Config) []string {
	var out []string
	diff(reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem(), "", &out)
	sort.Strings(out)
	return out
}

func diff(a, b reflect.Value, path string, out *[]string) {
	t := a.Type()
	if t.Kind() == reflect.Struct && t != timeType {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			p := path
			if !strings.Contains(","+opts+",", ",inline,") {
				if name == "" {
					name = strings.ToLower(f.Name)
				}
				p = join(path, name)
			}
			diff(a.Field(i), b.Field(i), p, out)
		}
		return
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		*out = append(*out, path)
	}
}
