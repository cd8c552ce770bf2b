package ledger

import (
	"encoding/json"
	"errors"
)

// ErrNotRedactable is returned by RedactPaths and RedactSecrets when the value cannot be
// redacted safely.
var ErrNotRedactable = errors.New("cannot redact")

// RedactPaths returns raw with the value at each JSON path ("$.a.b[2]") replaced by Redacted,
// using the same walk as the ledger's own redaction. It fails — rather than return something that
// may still hold a secret — when raw is not JSON or a path cannot be located. RedactSecrets, which
// the gateway uses for approval copies and redacted results, also cuts out located spans.
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

// RedactSecrets returns raw with each secret redacted as Append redacts a record's Secrets: the
// located spans of a flagged string replaced by markers ("[REDACTED:aws_access_key]"), anything
// else flagged replaced whole. It also returns the texts it removed (a string's characters, any
// other value's compact JSON), so that a caller can keep them out of free text as well. Like
// RedactPaths it fails rather than return something that may still hold a secret.
func RedactSecrets(raw json.RawMessage, secrets []Secret) (out json.RawMessage, removed []string, err error) {
	return RedactSecretsIn(raw, nil, secrets)
}

// RedactSecretsIn is RedactSecrets of raw as the caller's one strict parse decoded it (parsed,
// as Record.ParamsValue: nil to parse raw here). The result is then the canonical encoding of
// the redacted value, and raw is not read again.
func RedactSecretsIn(raw json.RawMessage, parsed map[string]any, secrets []Secret) (out json.RawMessage, removed []string, err error) {
	if len(secrets) == 0 {
		return raw, nil, nil
	}
	rd := newRedaction(nil, nil, nil, len(raw)+1)
	r := &Record{Params: raw, ParamsValue: parsed, Secrets: secrets}
	rd.collect = &removed
	rd.apply(r, nil)
	if r.ParamsDropped != "" {
		return nil, nil, errors.Join(ErrNotRedactable, errors.New(r.ParamsDropped))
	}
	return r.Params, removed, nil
}
