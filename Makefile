# make test is the project's test command: vet, staticcheck, the npm packages of the MCP end-to-end
# tests (when npm is installed), then every test with the race detector, pointed at the PostgreSQL
# and Redis that answer on 127.0.0.1 (scripts/test.sh); it ends by naming any suite it had to skip.
GO ?= go
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck

.PHONY: test vet staticcheck build static release run bench fmt tools e2e-deps model model-check

# The build stamp (internal/version), from git unless given: make release VERSION=v1.2.0. The date
# is the commit's, so the same commit builds the same bytes.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell git log -1 --format=%cI 2>/dev/null || echo unknown)
VERSION_PKG := github.com/portcullis-ai/portcullis/internal/version
LDFLAGS := -s -w -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Commit=$(COMMIT) -X $(VERSION_PKG).Date=$(DATE)
# The one release build: static (no cgo: SQLite is pure Go), stamped, no local paths. `static`,
# `release` and the Dockerfile all run it.
GOBUILD = CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
OUT ?= bin/portcullis
PROBE_OUT ?= bin/portcullis-probe
PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64

test: vet staticcheck e2e-deps
	./scripts/test.sh

# The real MCP servers, the conformance suite and the agent frameworks the e2e tests drive;
# installed again only when a lock file changes. Without npm the tests skip, and scripts/test.sh says so at the end.
E2E_DEPS := $(if $(shell command -v npm),e2e/node_modules/.package-lock.json e2e/conformance/node_modules/.package-lock.json e2e/frameworks/node_modules/.package-lock.json)
e2e-deps: $(E2E_DEPS)

e2e/node_modules/.package-lock.json: e2e/package-lock.json
	npm ci --prefix e2e --no-audit --no-fund || echo "npm ci failed: the MCP end-to-end tests will skip" >&2

e2e/conformance/node_modules/.package-lock.json: e2e/conformance/package-lock.json
	npm ci --prefix e2e/conformance --no-audit --no-fund || echo "npm ci failed: the MCP conformance tests will skip" >&2

# The agent frameworks (OpenAI Agents SDK, LangChain.js, Vercel AI SDK) the TypeScript client's
# integrations are tested with.
e2e/frameworks/node_modules/.package-lock.json: e2e/frameworks/package-lock.json
	npm ci --prefix e2e/frameworks --no-audit --no-fund || echo "npm ci failed: the framework integration tests will skip" >&2

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

# A static, stamped binary at $(OUT), and the health probe the container image runs.
static:
	$(GOBUILD) -o $(OUT) ./cmd/portcullis
	$(GOBUILD) -o $(PROBE_OUT) ./cmd/portcullis-probe

# Release binaries bin/portcullis-OS-ARCH[.exe] for $(PLATFORMS), and bin/SHA256SUMS over them.
release:
	@mkdir -p bin && rm -f bin/portcullis-*-* bin/SHA256SUMS
	@for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; [ "$$os" = windows ] && ext=.exe; \
		echo "GOOS=$$os GOARCH=$$arch $(GOBUILD) -o bin/portcullis-$$os-$$arch$$ext ./cmd/portcullis"; \
		GOOS=$$os GOARCH=$$arch $(GOBUILD) -o bin/portcullis-$$os-$$arch$$ext ./cmd/portcullis || exit 1; \
	done
	cd bin && sha256sum portcullis-*-* > SHA256SUMS
	@echo "bin/SHA256SUMS:" && cat bin/SHA256SUMS

run:
	$(GO) run ./cmd/portcullis serve

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# The embedded prompt-injection model: rebuild it from the shared datasets, or check it is what
# they build (PORTCULLIS_DATASETS, default ../shared/datasets).
model:
	$(GO) run ./internal/inspect/train

model-check:
	$(GO) run ./internal/inspect/train -check
