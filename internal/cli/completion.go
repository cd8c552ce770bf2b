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
		"compliance": {"report"},
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
	sh, ok := completionScripts[args[0]]
	if !ok {
		return unknownSub(std.Err, "completion", args[0], []string{"bash", "zsh", "fish"})
	}
	fmt.Fprintf(std.Out, sh.head, strings.Join(top, " "))
	for _, n := range names {
		fmt.Fprintf(std.Out, sh.sub, n, strings.Join(subs[n], " "))
	}
	fmt.Fprint(std.Out, sh.tail)
	return exitOK
}

// completionScripts: per shell, the script's head (given the commands), one line per command
// with subcommands (given the command and its subcommands), and its tail.
var completionScripts = map[string]struct{ head, sub, tail string }{
	"bash": {
		head: "# bash completion for portcullis\n_portcullis() {\n  local cur=${COMP_WORDS[COMP_CWORD]}\n" +
			"  if [ \"$COMP_CWORD\" -eq 1 ]; then COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")); return; fi\n" +
			"  if [ \"$COMP_CWORD\" -eq 2 ]; then\n    case ${COMP_WORDS[1]} in\n",
		sub:  "      %s) COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")); return;;\n",
		tail: "    esac\n  fi\n  COMPREPLY=($(compgen -f -- \"$cur\"))\n}\ncomplete -F _portcullis portcullis\n",
	},
	"zsh": {
		head: "#compdef portcullis\n_portcullis() {\n  if (( CURRENT == 2 )); then compadd -- %s; return; fi\n" +
			"  if (( CURRENT == 3 )); then\n    case $words[2] in\n",
		sub:  "      %s) compadd -- %s; return;;\n",
		tail: "    esac\n  fi\n  _files\n}\ncompdef _portcullis portcullis\n",
	},
	"fish": {
		head: "# fish completion for portcullis\ncomplete -c portcullis -f -n __fish_use_subcommand -a \"%s\"\n",
		sub:  "complete -c portcullis -f -n '__fish_seen_subcommand_from %s' -a \"%s\"\n",
	},
}
