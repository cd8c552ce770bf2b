package ledger

import (
	"encoding/json"
	"errors"
)

// ErrNotRedactable is returned by RedactPaths when the value cannot be redacted safely.
var ErrNotRedactable = errors.New("cannot redact")

// RedactPaths returns raw with the value at each JSON path ("$.a.b[2]") replaced by Redacted,
// using the same walk as the ledger's own redaction. It fails — rather than return something that
// may still hold a secret — when raw is not JSON or a path cannot be located. Other parts of the
// gateway (approval copies, redacted tool results) use it so that there is one redaction.
func RedactPaths(raw json.RawMessage, paths []string) (json.RawMessage, error) {
	if len(paths) == 0 {
		return raw, nil
	}
	rd := newRedaction(nil, nil, nil, len(raw)+1)
	r := &Record{Params: raw}
	rd.apply(r, paths)
	if r.ParamsDropped != "" {
		return nil, errors.Join(ErrNotRedactable, errors.New(r.ParamsDropped))
	}
	return r.Params, nil
}
