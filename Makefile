# make demo           the agent server example on an embedded SQLite file: three requests (one calls a tool), the answers, the stored rows
# make demo-lakebase  the same conversation through the Lakebase code path, offline (fake control plane, local PostgreSQL)
# make test           go vet and go test -race for everything, on a throwaway PostgreSQL
# make bench-scale    the store and a retention prune on 10 million items (10 to 30 minutes; not part of make test)
SHELL := /bin/bash
GO ?= go

.PHONY: all demo demo-lakebase test test-go vet bench bench-scale fmt

all: test

demo:
	./scripts/demo.sh

demo-lakebase:
	./scripts/with-postgres.sh ./scripts/demo-lakebase.sh

test:
	./scripts/with-postgres.sh $(MAKE) --no-print-directory test-go

# MODULES are the Go modules of this repository: the library, and those kept
# apart so that library users do not download their dependencies. A module
# directory that does not exist is an error, not a skip.
MODULES := . examples examples/adk cmd/lakesession openaisession

# test-go runs the Go checks against the server LAKESESSION_TEST_DATABASE_URL names.
test-go: vet
	@set -e; for m in $(MODULES); do \
		echo "== go test -race $$m" >&2; \
		(cd $$m && $(GO) test -race -count=1 ./...); \
	done

vet:
	@set -e; for m in $(MODULES); do \
		echo "== go vet $$m" >&2; \
		(cd $$m && $(GO) vet ./...); \
	done

# bench runs the benchmarks on a throwaway PostgreSQL: the token cache and the
# connector, then the session store with its ratios against the speed targets.
bench:
	./scripts/with-postgres.sh $(GO) test -run '^$$' -bench . -benchmem -count 3 ./lakebasecred/ ./connector/
	./scripts/with-postgres.sh bash -c 'cd openaisession && $(GO) test -run "^$$" -bench . -benchmem -count 3'
	./scripts/bench.sh

# bench-scale loads 10 million items into a throwaway PostgreSQL and measures
# the store's calls against a 10,000-item table, and a prune of half the
# sessions while writers work (scripts/bench-scale.sh; flags in
# internal/scalebench). Not part of make test.
bench-scale:
	./scripts/bench-scale.sh

fmt:
	gofmt -l -w .
