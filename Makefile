# ipa-oci — see README.md. `make test` is the whole suite (it installs what it needs).
GO ?= go

.PHONY: build test setup vet bench clean

build:
	$(GO) build -trimpath -o bin/ipa-oci ./cmd/ipa-oci

setup:
	bash scripts/setup-test-env.sh

test:
	bash scripts/test.sh

vet:
	gofmt -l . | grep . && exit 1 || true
	$(GO) vet ./...

bench:
	bash scripts/bench-pull.sh

clean:
	rm -rf bin out
