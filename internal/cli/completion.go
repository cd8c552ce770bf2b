package cli

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// subcommands are the second words of the commands that have them, for completion and
// "did you mean".
func subcommands() map[string][]string {
	policy := make([]string, 0, len(policySubs))
	for n := range policySubs {
		policy = append(policy, n)
	}
	audit := make([]string, 0, len(auditCommands))
	for n := range auditCommands {
		audit = append(audit, n)
	}
	sort.Strings(policy)
	sort.Strings(audit)
	return map[string][]string{
		"policy":     policy,
		"audit":      audit,
		"approvals":  approvalsSubs,
		"keys":       keysSubs,
		"mcp":        {"pins"},
		"config":     {"check"},
		"completion": {"bash", "zsh", "fish"},
	}
}

// runCompletion prints a completion script for commands and subcommands; flags are listed by
// each command's -h.
func runCompletion(_ context.Context, std Stdio, args []string) int {
	if len(args) != 1 || isHelp(args[0]) {
		w, code := std.Err, exitUsage
		if slices.ContainsFunc(args, isHelp) {
			w, code = std.Out, exitOK
		}
		fmt.Fprintln(w, "Usage: portcullis completion bash|zsh|fish\n\n"+
			"  bash: source <(portcullis completion bash)            (or save it in /etc/bash_completion.d/)\n"+
			"  zsh:  portcullis completion zsh > \"${fpath[1]}/_portcullis\"\n"+
			"  fish: portcullis completion fish > ~/.config/fish/completions/portcullis.fish")
		return code
	}
	top := append(commandNames(), "help")
	subs := subcommands()
	subs["help"] = commandNames()
	names := make([]string, 0, len(subs))
	for n := range subs {
		names = append(names, n)
	}
	sort.Strings(names)
	w := std.Out
	switch args[0] {
	case "bash":
		fmt.Fprintf(w, "# bash completion for portcullis\n_portcullis() {\n  local cur=${COMP_WORDS[COMP_CWORD]}\n")
		fmt.Fprintf(w, "  if [ \"$COMP_CWORD\" -eq 1 ]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); return; fi\n", strings.Join(top, " "))
		fmt.Fprintf(w, "  if [ \"$COMP_CWORD\" -eq 2 ]; then\n    case ${COMP_WORDS[1]} in\n")
		for _, n := range names {
			fmt.Fprintf(w, "      %s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return;;\n", n, strings.Join(subs[n], " "))
		}
		fmt.Fprintf(w, "    esac\n  fi\n  COMPREPLY=($(compgen -f -- \"$cur\"))\n}\ncomplete -F _portcullis portcullis\n")
	case "zsh":
		fmt.Fprintf(w, "#compdef portcullis\n_portcullis() {\n  if (( CURRENT == 2 )); then compadd -- %s; return; fi\n", strings.Join(top, " "))
		fmt.Fprintf(w, "  if (( CURRENT == 3 )); then\n    case $words[2] in\n")
		for _, n := range names {
			fmt.Fprintf(w, "      %s) compadd -- %s; return;;\n", n, strings.Join(subs[n], " "))
		}
		fmt.Fprintf(w, "    esac\n  fi\n  _files\n}\ncompdef _portcullis portcullis\n")
	case "fish":
		fmt.Fprintf(w, "# fish completion for portcullis\ncomplete -c portcullis -f -n __fish_use_subcommand -a %q\n", strings.Join(top, " "))
		for _, n := range names {
			fmt.Fprintf(w, "complete -c portcullis -f -n '__fish_seen_subcommand_from %s' -a %q\n", n, strings.Join(subs[n], " "))
		}
	default:
		return unknownSub(std.Err, "completion", args[0], []string{"bash", "zsh", "fish"})
	}
	return exitOK
}
