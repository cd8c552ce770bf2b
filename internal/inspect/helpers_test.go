package inspect

import "strings"

// testValue builds a Value the way the engine would, for detector tests. Until the engine's
// normaliser exists it lower-cases for Norm and decodes nothing.
func NewTestValue(path, key, raw string) Value { return testValue(path, key, raw) }

func testValue(path, key, raw string) Value {
	return Value{Path: path, Key: key, Raw: raw, Norm: strings.ToLower(raw)}
}
