# zcc — conformance and simulation harness for Zeek cluster controllers.
GO       ?= go
BIN      ?= bin
FUZZTIME ?= 15s
IMAGE    ?= zcc
IMAGE_TAG ?= dev
export CGO_ENABLED ?= 0

.PHONY: all build conform test vet fmt-check unit bench fuzz clean image

all: build

## build: the static zcc binary in bin/
build:
	$(GO) build -trimpath -o $(BIN)/zcc ./cmd/zcc

## image: the reference controller as a container image, $(IMAGE):$(IMAGE_TAG)
## and $(IMAGE):latest, built FROM scratch around bin/zcc by the local Docker
## engine (classic builder; no registry is contacted)
image: build
	DOCKER_BUILDKIT=0 docker build --tag $(IMAGE):$(IMAGE_TAG) --tag $(IMAGE):latest .
	@# Earlier builds whose tags moved to this one are left untagged: remove them.
	docker image prune --force --filter label=dev.zcc-harness.image=controller

## conform: the full conformance suite against the embedded reference controller
conform: build
	$(BIN)/zcc conform --report-dir reports/conform

## test: vet, gofmt check, and every test with the race detector
test: vet fmt-check unit

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 9m ./...

## bench: every Go benchmark, with allocations
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## fuzz: each fuzz target for FUZZTIME (default 15s)
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash scripts/fuzz.sh

clean:
	rm -rf $(BIN)
