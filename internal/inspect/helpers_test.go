package inspect

// NewTestValue builds a Value the way the engine would, for detector tests.
func NewTestValue(path, key, raw string) Value { return testValue(path, key, raw) }

func testValue(path, key, raw string) Value { return NewValue(path, key, raw) }
