# ipa-oci — see README.md. `make test` is the whole suite (it installs what it needs).
GO ?= go

.PHONY: build test setup vet bench demo kernel boot-test lock clean

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

# The main job: kernel + project init + stand-in agent, pushed, pulled with --ipxe, netbooted.
demo:
	bash scripts/demo.sh

# Build (and cache) the kernel from kernel-config/x86_64.config.
kernel:
	bash scripts/kernel-build.sh build x86_64

# Boot any build's output: make boot-test KERNEL=out/ironic-python-agent.kernel INITRAMFS=...
boot-test:
	bash scripts/boot-test.sh $(KERNEL) $(INITRAMFS)

# Resolve ipa-oci.lock anew: git refs, the agent's wheels, the builder image ID (needs network
# and the builder image: `bin/ipa-oci builder build`). Commit the result.
lock: build
	bin/ipa-oci lock --update

clean:
	rm -rf bin out
