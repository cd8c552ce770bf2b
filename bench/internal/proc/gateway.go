package proc

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/sdk/httpsig"
)

// InitGateway initialises the embedded default in dataDir for a load tool: the demo agent gets a
// request-signing key named keyID (its private half is returned with the demo agent's API key),
// the log level is warn (a line per request would be the logger's cost) and the per-agent
// concurrency limit is out of the way.
func InitGateway(ctx context.Context, dataDir, keyID string) (cfgPath, apiKey string, priv ed25519.PrivateKey, err error) {
	cfgPath, apiKey, err = app.Init(ctx, dataDir)
	if err != nil {
		return "", "", nil, err
	}
	priv, _, pub, err := httpsig.GenerateKey()
	if err != nil {
		return "", "", nil, err
	}
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return "", "", nil, err
	}
	cfg = bytes.Replace(cfg, []byte("      roles: [reporting]\n"),
		[]byte("      roles: [reporting]\n      signing_keys:\n        - id: "+keyID+"\n          public_key: "+pub+"\n"), 1)
	cfg = bytes.Replace(cfg, []byte("level: info"), []byte("level: warn"), 1)
	// A top-level section of its own, at the end, wherever the default's sections end.
	cfg = append(bytes.TrimRight(cfg, "\n"), []byte("\nlimits:\n  max_concurrency_per_agent: 4096\n")...)
	return cfgPath, apiKey, priv, os.WriteFile(cfgPath, cfg, 0o600)
}
