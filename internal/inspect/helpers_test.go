package inspect

// testValue builds a Value the way the engine does, for detector tests.
func testValue(path, key, raw string) Value {
	return NewValue(path, key, raw)
}
