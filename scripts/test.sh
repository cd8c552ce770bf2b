#!/usr/bin/env bash
# The whole test suite, as `make test` runs it: every package with the race detector, pointed at
# the services that answer on this machine, then a summary of every suite that could not run and
# the one command that runs it. Exit status: go test's.
set -uo pipefail
cd "$(dirname "$0")/.."

# A TCP port on 127.0.0.1 answers.
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

skipped=()
service() { # VAR PORT VALUE WHAT
	if [ -n "${!1:-}" ]; then return; fi
	if up "$2"; then
		export "$1=$3"
	else
		skipped+=("$4: nothing answers on 127.0.0.1:$2 (start it, or set $1)")
	fi
}
service PORTCULLIS_TEST_POSTGRES 5432 "postgres://postgres@127.0.0.1:5432/test?sslmode=disable" "PostgreSQL store and replica tests"
service PORTCULLIS_TEST_REDIS 6379 "127.0.0.1:6379" "Redis store tests and the two-replica end-to-end test"

[ -d e2e/node_modules ] || skipped+=("MCP end-to-end tests against real MCP servers: e2e/node_modules is absent (npm ci --prefix e2e)")
[ -d e2e/conformance/node_modules ] || skipped+=("MCP conformance suite: e2e/conformance/node_modules is absent (npm ci --prefix e2e/conformance)")
[ -d e2e/frameworks/node_modules ] || skipped+=("agent framework integrations (OpenAI Agents SDK, LangChain.js, Vercel AI SDK): e2e/frameworks/node_modules is absent (npm ci --prefix e2e/frameworks)")
command -v node >/dev/null || skipped+=("TypeScript client tests: node is not installed")
python3 -c 'import cryptography' 2>/dev/null || skipped+=("Python client tests: python3 with the cryptography package is not installed")

start=$(date +%s)
go test -race -count=1 -timeout 30m ./...
rc=$?
# Allocation bounds hold only without the race detector, whose instrumentation allocates (the
# tests skip under it): run them once more without it.
go test -count=1 -run 'TestVisibleToolsRepeatCheap|TestHoldDefinitionDigestsOnce' ./internal/guard/ || rc=1
# The policy engine's equivalence with OPA and cedar-go (a nested module, so neither enters the
# product's go.mod): same decisions on thousands of random requests. -mod=mod lets it follow the
# root module's requirements through its replace directive.
(cd bench/compare && GOFLAGS=-mod=mod go test -count=1 ./...) || rc=1
took=$(( $(date +%s) - start ))

echo
echo "go test: exit $rc in $((took / 60))m$((took % 60))s"
if [ ${#skipped[@]} -gt 0 ]; then
	echo "================================================================================"
	echo "NOT THE WHOLE SUITE: ${#skipped[@]} suite(s) skipped"
	for s in "${skipped[@]}"; do echo "  - $s"; done
	echo "Run everything CI runs (starts the services, installs the npm packages): .ci/run"
	echo "================================================================================"
fi
exit $rc
