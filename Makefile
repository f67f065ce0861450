# make demo  - the agent server example on an embedded SQLite file: two requests, answers, stored rows
# make test  - go vet and go test -race for everything, on a throwaway PostgreSQL
SHELL := /bin/bash
GO ?= go

.PHONY: all demo demo-lakebase test test-go vet bench fmt

all: test

demo:
	@echo "make demo: not available yet" >&2; exit 1

test:
	./scripts/with-postgres.sh $(MAKE) --no-print-directory test-go

# test-go runs the Go checks against whatever LAKESESSION_TEST_DATABASE_URL names.
test-go: vet
	$(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w .
