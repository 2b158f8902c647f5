# culvert — the two commands a newcomer needs are `make demo` and `make test`.

SHELL       := bash
.SHELLFLAGS := -eu -o pipefail -c

GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 30s
BENCHTIME ?= 1s
COUNT    ?= 1

.PHONY: all demo test lint fmt-check vet unit fuzz bench bench-all tools h2spec perf

all: test

## demo: culvert quickstart: an edge, a connector and the hello-world origin
## in one process on loopback (state in a temporary directory); it prints the
## curl command that goes through the tunnel and runs until Ctrl-C.
## DEMO_FLAGS passes flags, e.g. DEMO_FLAGS="--listen 127.0.0.1:9080".
DEMO_FLAGS ?=
demo:
	$(GO) run ./cmd/culvert quickstart $(DEMO_FLAGS)

## test: formatting, vet, and the unit tests under the race detector
## (h2spec included: the tools target installs it).
test: tools fmt-check vet unit

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# A hung test fails after 5 minutes; GOTRACEBACK=crash makes its dump include
# the stacks of running goroutines too (a spinning one shows up).
unit:
	H2SPEC=$(H2SPEC) GOTRACEBACK=crash $(GO) test -race -shuffle=on -timeout 5m $(PKGS)
	# allocation contracts, and tests at real scale (the race detector
	# allows 8128 goroutines), run without -race
	$(GO) test -run 'Alloc|AtRealScale' -count=1 $(PKGS)
	# every benchmark once, so none rots
	$(GO) test -run '^$$' -bench . -benchtime 1x $(PKGS) > /dev/null

lint: fmt-check vet

## fuzz: every fuzz target, FUZZTIME each (bounded).
FUZZ_TARGETS = \
	./frames:FuzzReader \
	./frames/hpack:FuzzDecode \
	./frames/hpack:FuzzRoundTrip \
	./dataplane:FuzzServerConn \
	./dataplane/tunnel:FuzzReadMessage \
	./tls:FuzzParseBundle \
	./control/dnsserver:FuzzServeDNS

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

## bench: the codec and engine comparisons (benchstat-friendly output).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(COUNT) ./bench/

## bench-all: every benchmark in the tree once (a smoke run).
bench-all:
	$(GO) test -run '^$$' -bench . -benchtime 1x $(PKGS)

## tools: external programs the tests and benchmarks drive, installed by
## name and version (h2spec: the HTTP/2 conformance suite; benchstat; etcd:
## the shared store of several edges, from Debian's etcd-server package;
## chromium, dig and curl for the control path's end-to-end test, from
## Debian's chromium, dnsutils and curl packages).
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
H2SPEC    := $(GOBIN_DIR)/h2spec
BENCHSTAT := $(GOBIN_DIR)/benchstat

.PHONY: debian-tools
tools: $(H2SPEC) $(BENCHSTAT) debian-tools

# Debian packages, installed only when their command is missing (one
# apt-get update for all); sudo only when not root.
DEBIAN_TOOLS = etcd:etcd-server chromium:chromium dig:dnsutils curl:curl
debian-tools:
	@missing=; for t in $(DEBIAN_TOOLS); do \
		cmd=$${t%%:*}; pkg=$${t##*:}; \
		command -v $$cmd >/dev/null || [ -x /usr/bin/$$cmd ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing:$$missing"; \
		$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

$(H2SPEC):
	$(GO) install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible

$(BENCHSTAT):
	$(GO) install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da

## h2spec: the conformance suite against the engine's server role, and
## against the edge's visitor ports with a live tunnel and origin behind
## them, h2c and TLS, normal and --strict; prints h2spec's summary lines.
h2spec: $(H2SPEC)
	@H2SPEC=$(H2SPEC) CI=true $(GO) test -count=1 -run '^TestH2Spec$$' -v ./dataplane/ | grep -E 'h2spec \[|^(ok|FAIL|---)'
	@H2SPEC=$(H2SPEC) CI=true $(GO) test -count=1 -run '^TestH2SpecVisitors$$' -v ./cmd/culvert/ | grep -E 'h2spec \[|^(ok|FAIL|---)'

## perf: the tunnel under wrk (edge + connector + origin on loopback),
## against the origin directly; QUICK=1 for a smoke run (see perf/tunnel.sh).
perf:
	./perf/tunnel.sh
