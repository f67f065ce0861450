# make demo           the agent server example on an embedded SQLite file: two requests, the answers, the stored rows
# make demo-lakebase  the same conversation through the Lakebase code path, offline (fake control plane, local PostgreSQL)
# make test           go vet and go test -race for everything, on a throwaway PostgreSQL
SHELL := /bin/bash
GO ?= go

.PHONY: all demo demo-lakebase test test-go vet bench fmt

all: test

demo:
	./scripts/demo.sh

demo-lakebase:
	./scripts/with-postgres.sh ./scripts/demo-lakebase.sh

test:
	./scripts/with-postgres.sh $(MAKE) --no-print-directory test-go

# test-go runs the Go checks against the server LAKESESSION_TEST_DATABASE_URL names.
test-go: vet
	$(GO) test -race -count=1 ./...
	cd examples && $(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...
	cd examples && $(GO) vet ./...

# bench runs the benchmarks on a throwaway PostgreSQL: the token cache and the
# connector, then the session store with its ratios against the speed targets.
bench:
	./scripts/with-postgres.sh $(GO) test -run '^$$' -bench . -benchmem -count 3 ./lakebasecred/ ./connector/
	./scripts/bench.sh

fmt:
	gofmt -l -w .
