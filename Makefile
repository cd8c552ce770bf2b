# make test is the project's test command: vet, staticcheck, the npm packages of the MCP end-to-end
# tests (when npm is installed), then every test with the race detector, pointed at the PostgreSQL
# and Redis that answer on 127.0.0.1 (scripts/test.sh); it ends by naming any suite it had to skip.
GO ?= go
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck

.PHONY: test vet staticcheck build run bench fmt tools e2e-deps

test: vet staticcheck e2e-deps
	./scripts/test.sh

# The real MCP servers and the conformance suite the e2e tests drive; installed again only when a
# lock file changes. Without npm the tests skip, and scripts/test.sh says so at the end.
E2E_DEPS := $(if $(shell command -v npm),e2e/node_modules/.package-lock.json e2e/conformance/node_modules/.package-lock.json)
e2e-deps: $(E2E_DEPS)

e2e/node_modules/.package-lock.json: e2e/package-lock.json
	npm ci --prefix e2e --no-audit --no-fund || echo "npm ci failed: the MCP end-to-end tests will skip" >&2

e2e/conformance/node_modules/.package-lock.json: e2e/conformance/package-lock.json
	npm ci --prefix e2e/conformance --no-audit --no-fund || echo "npm ci failed: the MCP conformance tests will skip" >&2

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) || \
		(echo "staticcheck $(STATICCHECK_VERSION) is not installed and could not be downloaded: run 'make tools' once with the Go module proxy reachable" >&2; exit 1)

tools: $(STATICCHECK)

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

build:
	$(GO) build -o bin/portcullis ./cmd/portcullis

run:
	$(GO) run ./cmd/portcullis serve

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fmt:
	gofmt -w $$(git ls-files '*.go')
