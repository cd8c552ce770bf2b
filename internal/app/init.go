package app

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/portcullis-ai/portcullis/internal/identity"
)

//go:embed defaults/portcullis.yaml defaults/report-generator-v1.yaml
var defaults embed.FS

// DemoAgent is the agent the embedded default declares.
const DemoAgent = "report-generator-v1"

// Init makes dir a working embedded default the first time it is used: a configuration file, the
// seed document's example policy and an API key for the demo agent. It returns the configuration
// file's path and, only when it created the key, the key itself (shown once, stored as a hash).
// An existing directory is left as it is.
func Init(ctx context.Context, dir string) (cfgPath, apiKey string, err error) {
	cfgPath = filepath.Join(dir, ConfigFile)
	if _, err := os.Stat(cfgPath); err == nil {
		return cfgPath, "", nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("init data directory: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o700); err != nil {
		return "", "", fmt.Errorf("init data directory: %w", err)
	}
	pol, _ := defaults.ReadFile("defaults/report-generator-v1.yaml")
	if err := os.WriteFile(filepath.Join(dir, "policies", "report-generator-v1.yaml"), pol, 0o600); err != nil {
		return "", "", fmt.Errorf("write example policy: %w", err)
	}
	ks, err := identity.OpenFileKeyStore(filepath.Join(dir, identity.KeyFileName))
	if err != nil {
		return "", "", fmt.Errorf("open api keys: %w", err)
	}
	apiKey, _, err = identity.CreateAPIKey(ctx, ks, DemoAgent, "created by the first portcullis serve", time.Now(), 0)
	if err != nil {
		return "", "", fmt.Errorf("create demo key: %w", err)
	}
	// The configuration file is written last: its presence marks a finished initialisation.
	cfg, _ := defaults.ReadFile("defaults/portcullis.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return "", "", fmt.Errorf("write configuration: %w", err)
	}
	return cfgPath, apiKey, nil
}
