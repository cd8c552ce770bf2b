package inspect

// nameFact is one yes/no question detectors ask about a parameter name (Value.Key) or a tool name
// (Call.Tool): "is it a path parameter?", "is it a database tool?". The answers depend only on the
// name, and the same name comes back for every element of an array and for every value of a call,
// so they are asked once and remembered (factMemo) instead of lower-casing and matching the name
// again for each value and detector.
type nameFact uint16

// Facts about a parameter name.
const (
	factCodeKey     nameFact = 1 << iota // isCodeKey
	factCommandKey                       // isCommandKey
	factPathKey                          // isPathKey
	factHostKey                          // isHostKey
	factIPLookupKey                      // ssrfLookupKey
	factPhoneKey                         // isPhoneKey
	factFilterKey                        // isFilterKey
	factSecretKey                        // secretKeyName
	factSQLKey                           // sqlKey
	factSQLToolKey                       // sqlToolKey
)

// Facts about a tool name.
const (
	factDatabaseTool nameFact = 1 << iota // isDatabaseTool
	factSQLTool                           // isSQLTool
)

// factMemo remembers the answers of nameFact questions about one name. The zero value knows
// nothing, so a Value or Call built by hand (tests, benchmarks) simply asks each time it is new.
type factMemo struct {
	known, yes nameFact
}

// is returns the answer to f about name, computing it with pred the first time. The caller
// passes the same name for the same memo (the Value's key, the Call's tool).
func (m *factMemo) is(f nameFact, name string, pred func(string) bool) bool {
	if m.known&f == 0 {
		m.known |= f
		if pred(name) {
			m.yes |= f
		}
	}
	return m.yes&f != 0
}

// keyIs answers a question about v's parameter name.
func (v *Value) keyIs(f nameFact, pred func(string) bool) bool { return v.keyFacts.is(f, v.Key, pred) }

// toolIs answers a question about the call's tool name.
func (c *Call) toolIs(f nameFact, pred func(string) bool) bool {
	return c.toolFacts.is(f, c.Tool, pred)
}
