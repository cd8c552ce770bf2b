package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

func init() {
	registerPolicySub("promote", "make the shadow (candidate) policy set the enforced one: --data DIR | --config FILE", runPolicyPromote)
}

// runPolicyPromote installs the candidate set of the configuration's shadow_policies into its
// enforced policy directory with policy deploy's checked, fsynced, renamed writes, and removes
// the enforced files the candidate does not have: the enforced directory then holds exactly the
// candidate. A candidate that does not load is refused and nothing is written.
func runPolicyPromote(_ context.Context, std Stdio, args []string) int {
	fs, loc := auditFlags(std, "promote")
	fs.Init("portcullis policy promote", flag.ContinueOnError)
	fs.Lookup("config").Usage = "the gateway's configuration, whose policies and shadow_policies are read (default: <data>/" + app.ConfigFile + ")"
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	path := loc.configPath()
	if path == "" {
		problem(std.Err, fmt.Sprintf("policy promote: no configuration: %s has no %s and no --config was given", loc.data, app.ConfigFile), "portcullis policy promote --config /etc/portcullis/portcullis.yaml")
		return exitUsage
	}
	cfg, err := config.Load(path)
	if err != nil {
		printConfigError(std.Err, err, "policy promote reads policies and shadow_policies from the gateway's configuration")
		return exitUsage
	}
	if len(cfg.ShadowPolicies) == 0 {
		problem(std.Err, "policy promote: the configuration lists no shadow_policies", "shadow_policies: [policies-candidate] beside policies: [policies]")
		return exitUsage
	}
	if len(cfg.Policies) != 1 {
		problem(std.Err, "policy promote: the configuration must list exactly one policy directory under policies", "promote replaces that directory's files")
		return exitUsage
	}
	dir := cfg.Policies[0]
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		problem(std.Err, fmt.Sprintf("policy promote: %s is not a directory", dir), "promote replaces the files of the enforced policy directory")
		return exitUsage
	}
	srcs, err := policy.ReadSources(cfg.ShadowPolicies...)
	if err != nil {
		return printLoadError(std.Err, err)
	}
	if len(srcs) == 0 {
		problem(std.Err, "policy promote: the candidate set holds no policy file", "promoting it would deny every call")
		return exitUsage
	}
	incoming := map[string][]byte{}
	var order []string
	for _, s := range srcs {
		base := filepath.Base(s.Name)
		if _, dup := incoming[base]; dup {
			problem(std.Err, fmt.Sprintf("policy promote: two candidate files named %s", base), "the enforced directory holds files by name")
			return exitUsage
		}
		incoming[base] = s.Data
		order = append(order, base)
	}
	// The candidate alone must load: installPolicies checks the directory as it will be.
	return installPolicies(std, "policy promote", dir, incoming, order, true)
}
