# paddock: see README.md. `make demo` and `make test` work on a fresh Debian 12 machine as root.
SHELL := /bin/bash
CARGO ?= cargo
TARGET ?= $(shell rustc -vV | sed -n 's/^host: //p')
BIN := target/$(TARGET)/release/paddock
# glibc linked statically, non-PIE: one self-contained binary that ldd calls "not a dynamic
# executable" and that starts without relocation work (libseccomp is static via .cargo/config.toml).
STATIC_FLAGS := -C target-feature=+crt-static -C relocation-model=static
APT_PACKAGES := libseccomp-dev busybox-static runc hyperfine time iproute2 procps jq uidmap
# test-e2e only: the real callers, started privately by integration/*.sh (conmon comes with podman).
E2E_APT_PACKAGES := containerd podman
DEMO_DIR := demo

.PHONY: all deps build demo test test-unit test-integration test-e2e test-v2 bench bench-deps bench-v2 lint install clean

all: build

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	RUSTFLAGS="$(STATIC_FLAGS)" $(CARGO) build --release --locked --target $(TARGET)
	@ldd $(BIN) 2>&1 | grep -q "not a dynamic executable" || { echo "$(BIN) is not static"; exit 1; }
	@ls -l $(BIN)

demo: build
	scripts/make-bundle.sh $(DEMO_DIR) sh -c 'echo "hostname: $$(hostname)"; ps; id'
	$(BIN) run --bundle $(DEMO_DIR) paddock-demo

test: build lint test-unit test-integration test-e2e test-v2

test-unit:
	$(CARGO) test --locked --bins

test-integration: build
	PADDOCK_BIN=$(CURDIR)/$(BIN) $(CARGO) test --locked --no-fail-fast --test '*' -- --test-threads=4

# containerd 1.6 and Podman 4.3 from Debian, each in a private mount namespace, paddock as runtime.
test-e2e: build
	@missing=""; for p in $(E2E_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@rc=0; integration/containerd.sh $(CURDIR)/$(BIN) || rc=1; integration/podman.sh $(CURDIR)/$(BIN) || rc=1; exit $$rc

# Pure cgroup v2: Debian's own kernel booted with cgroup_no_v1=all under QEMU (software
# emulation) over the host's root, read-only; the tests that exercise cgroups, and AppArmor
# (which this host's kernel lacks), run inside (TEST or TEST:FILTER; the guest is slower,
# so exec runs only its cgroup and AppArmor cases).
V2_TESTS := cgroups cgroups_v2 devices devices_v2 lifecycle parity exec:cgroup apparmor exec:apparmor security_fds:t13_ security_fds:t14_ rootless
test-v2: build
	integration/guest/v2-tests.sh $(CURDIR)/$(BIN) $(V2_TESTS)

# Side by side with runc and crun (crun refuses this hybrid host, so it is measured in
# the pure v2 guest: bench-v2 prints its report there, kept in bench/out/report-v2.txt).
BENCH_APT_PACKAGES := crun hyperfine
bench-deps:
	@missing=""; for p in $(BENCH_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

bench: build bench-deps
	bench/run.sh $(BIN)

bench-v2: build bench-deps
	@mkdir -p bench/out
	integration/guest/boot.sh bench/guest.sh $(CURDIR)/$(BIN) | tee bench/out/report-v2.txt

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

install: build
	install -m 0755 $(BIN) /usr/local/bin/paddock

clean:
	$(CARGO) clean
	rm -rf $(DEMO_DIR)
