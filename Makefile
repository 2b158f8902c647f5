# culvert — the two commands a newcomer needs are `make demo` and `make test`.

GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 30s
BENCHTIME ?= 1s
COUNT    ?= 1

.PHONY: all demo test lint fmt-check vet unit fuzz bench bench-all tools

all: test

## demo: run the main job on the embedded defaults.
demo:
	@echo "culvert: the tunnel (edge + connector + origin) is not built yet."
	@echo "What exists today is the HTTP/2 codec; here it is against x/net/http2:"
	@echo
	$(GO) test -run '^$$' -bench 'BenchmarkCodec' -benchmem -benchtime 200ms ./bench/

## test: formatting, vet, and the unit tests under the race detector.
test: fmt-check vet unit

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -shuffle=on $(PKGS)
	# allocation contracts are checked without -race (it allocates)
	$(GO) test -run 'NoAlloc' -count=1 $(PKGS)

lint: fmt-check vet

## fuzz: every fuzz target, FUZZTIME each (bounded).
FUZZ_TARGETS = \
	./frames:FuzzReader \
	./frames/hpack:FuzzDecode \
	./frames/hpack:FuzzRoundTrip

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

## tools: what the perf work needs (benchstat).
tools:
	$(GO) install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
