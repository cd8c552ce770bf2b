package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/config"
)

// configPath is the configuration the key commands check owners against: --config, or the
// embedded default's configuration in the data directory.
func configPath(flagValue, dataDir string) (path string, explicit bool) {
	if flagValue != "" {
		return flagValue, true
	}
	return filepath.Join(dataDir, app.ConfigFile), false
}

// warnUndeclared tells the operator, after a key was created, that the configuration does not
// declare its owner, with the exact lines to add. It only warns: the configuration is often
// edited after the key is made (serve reloads it), and a key whose owner is undeclared
// authenticates nobody, so creating it opens nothing. A configuration that cannot be read is
// reported when it was named with --config; the embedded default's absent file is not (keys may
// be made before the first serve).
func warnUndeclared(std Stdio, cfgFlag, dataDir, owner, id string) {
	path, explicit := configPath(cfgFlag, dataDir)
	cfg, err := config.Load(path)
	if err != nil {
		if explicit || !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(std.Err, "warning: cannot check that %s is declared: %v\n", id, err)
		}
		return
	}
	switch owner {
	case "agent":
		for _, a := range cfg.Identity.Agents {
			if a.ID == id {
				return
			}
		}
		fmt.Fprintf(std.Err, "warning: %s is not declared under identity.agents in %s; the key authenticates nobody until it is. Add:\n\n"+
			"identity:\n  agents:\n    - id: %s\n\nand a policy with agent_id: %s (serve reloads both without a restart).\n", id, path, id, id)
	case "approver":
		for _, ap := range cfg.Approvals.Approvers {
			if ap.ID == id {
				return
			}
		}
		fmt.Fprintf(std.Err, "warning: %s is not declared under approvals.approvers in %s; the key approves nothing until it is. Add:\n\n"+
			"approvals:\n  approvers:\n    - id: %s\n      scopes:\n        - agents: [\".*\"]\n          tools: [\".*\"]\n\n"+
			"narrowing the scopes to the agents and tools they may approve (serve reloads it without a restart).\n", id, path, id)
	}
}
