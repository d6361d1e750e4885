# paddock: see README.md. `make demo` and `make test` work on a fresh Debian 12 machine as root.
SHELL := /bin/bash
CARGO ?= cargo
TARGET ?= $(shell rustc -vV | sed -n 's/^host: //p')
BIN := target/$(TARGET)/release/paddock
SHIM := target/$(TARGET)/release/containerd-shim-paddock-v2
# glibc linked statically, non-PIE: one self-contained binary that ldd calls "not a dynamic
# executable" and that starts without relocation work (libseccomp is static via .cargo/config.toml).
STATIC_FLAGS := -C target-feature=+crt-static -C relocation-model=static
APT_PACKAGES := libseccomp-dev busybox-static runc hyperfine time iproute2 procps jq criu uidmap
# test-e2e only: the real callers, started privately by integration/*.sh (conmon comes with podman);
# protoc builds the CRI types of the test-only CRI client.
E2E_APT_PACKAGES := containerd podman protobuf-compiler
# integration/cri.sh's CRI client: its own workspace and lock file, so that tonic/tokio stay out
# of paddock's. A debug build: it is built from scratch in CI, where that is the faster one.
CRI_CLIENT_MANIFEST := integration/cri-client/Cargo.toml
CRI_CLIENT := integration/cri-client/target/debug/cri-client
DEMO_DIR := demo

.PHONY: all deps build demo test test-unit test-integration test-e2e cri-client cri-client-deps test-v2 test-systemd bench bench-deps bench-shim bench-v2 lint install clean

all: build

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	RUSTFLAGS="$(STATIC_FLAGS)" $(CARGO) build --release --locked --target $(TARGET) --workspace
	@for b in $(BIN) $(SHIM); do ldd $$b 2>&1 | grep -q "not a dynamic executable" || { echo "$$b is not static"; exit 1; }; done
	@ls -l $(BIN) $(SHIM)

demo: build
	scripts/make-bundle.sh $(DEMO_DIR) sh -c 'echo "hostname: $$(hostname)"; ps; id'
	$(BIN) run --bundle $(DEMO_DIR) paddock-demo

test: build lint test-unit test-integration test-e2e test-v2 test-systemd

test-unit:
	$(CARGO) test --locked --workspace --bins

test-integration: build
	PADDOCK_BIN=$(CURDIR)/$(BIN) $(CARGO) test --locked --no-fail-fast --test '*' -- --test-threads=4

# containerd 1.6 (ctr through its runc shim and through ours, and its CRI plugin as a kubelet
# drives it) and Podman 4.3 from Debian, each in a private mount namespace, paddock as runtime.
test-e2e: build cri-client
	@missing=""; for p in $(E2E_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@rc=0; integration/containerd.sh $(CURDIR)/$(BIN) || rc=1; integration/shim.sh $(CURDIR)/$(BIN) || rc=1; \
	integration/podman.sh $(CURDIR)/$(BIN) || rc=1; \
	CRI_CLIENT=$(CURDIR)/$(CRI_CLIENT) integration/cri.sh $(CURDIR)/$(BIN) || rc=1; exit $$rc

cri-client-deps:
	@dpkg -s protobuf-compiler >/dev/null 2>&1 || { echo "installing: protobuf-compiler"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null; }

cri-client: cri-client-deps
	$(CARGO) build --locked --manifest-path $(CRI_CLIENT_MANIFEST)

# Pure cgroup v2: Debian's own kernel booted with cgroup_no_v1=all under QEMU (software
# emulation) over the host's root, read-only; the tests that exercise cgroups, and AppArmor
# (which this host's kernel lacks), run inside (TEST or TEST:FILTER; the guest is slower,
# so exec runs only its cgroup and AppArmor cases; fields: SCHED_FIFO and the CPU affinity
# of an exec cloned into its v2 cgroup; checkpoint: CRIU works on this kernel; rootless: a delegated v2 subtree).
V2_TESTS := cgroups cgroups_v2 devices devices_v2 lifecycle parity exec:cgroup apparmor exec:apparmor security_fds:t13_ security_fds:t14_ fields checkpoint parity_checkpoint rootless exec_tail
test-v2: build
	integration/guest/v2-tests.sh $(CURDIR)/$(BIN) $(V2_TESTS)

# The systemd cgroup driver, in the same guest with the host's systemd as PID 1: on cgroup v2,
# then the v1_ cases in systemd's legacy v1 layout.
SYSTEMD_TESTS := systemd_cgroup parity_systemd
test-systemd: build
	GUEST_SYSTEMD=1 integration/guest/v2-tests.sh $(CURDIR)/$(BIN) $(SYSTEMD_TESTS)
	GUEST_SYSTEMD=v1 integration/guest/v2-tests.sh $(CURDIR)/$(BIN) systemd_cgroup:v1_

# Side by side with crun and runc and the kernel floor, against issue 16's targets, with a
# per-phase strace breakdown of `run` (bench/out/report.md, phases.txt). On a hybrid host all
# run in a private mount namespace without the unified mount, which crun refuses. bench-v2:
# the same in the pure v2 guest, its report kept in bench/out/report-v2.txt.
BENCH_APT_PACKAGES := crun hyperfine strace
bench-deps:
	@missing=""; for p in $(BENCH_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

bench: build bench-deps
	bench/run.sh $(BIN)

# Our containerd shim next to Debian's Go runc shim (both driving paddock), in a private
# containerd: memory per container and `ctr run --rm` latency -> bench/out/shim.txt.
bench-shim: build bench-deps
	bench/shim.sh $(CURDIR)/$(BIN)

# The report is cut out of the guest's console (boot.sh keeps it in target/guest/console.log);
# the guest's exit status is make's.
bench-v2: build bench-deps
	@mkdir -p bench/out
	integration/guest/boot.sh bench/guest.sh $(CURDIR)/$(BIN); rc=$$?; \
	sed -n '/^# paddock bench/,/^PADDOCK_GUEST_EXIT/p' target/guest/console.log | tr -d '\r' >bench/out/report-v2.txt; \
	exit $$rc

lint: cri-client-deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	@# tail/tail.rs is built by build.rs outside cargo's crate graph: checked on its own.
	rustfmt --check --edition 2021 tail/tail.rs
	clippy-driver --edition 2021 --crate-type=bin -C panic=abort --emit=metadata -D warnings \
		-o target/tail-lint.rmeta tail/tail.rs
	$(CARGO) fmt --check --manifest-path $(CRI_CLIENT_MANIFEST)
	$(CARGO) clippy --locked --manifest-path $(CRI_CLIENT_MANIFEST) --all-targets -- -D warnings

# The binary, shell completions (from `paddock completion`) and man pages (paddock-man renders
# them from the same CLI definition) in the standard places under PREFIX.
PREFIX ?= /usr/local
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/paddock
	install -D -m 0755 $(SHIM) $(DESTDIR)$(PREFIX)/bin/containerd-shim-paddock-v2
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d $(DESTDIR)$(PREFIX)/share/man/man8
	$(BIN) completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/paddock
	$(BIN) completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_paddock
	$(BIN) completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/paddock.fish
	target/$(TARGET)/release/paddock-man $(DESTDIR)$(PREFIX)/share/man/man8

clean:
	$(CARGO) clean
	$(CARGO) clean --manifest-path $(CRI_CLIENT_MANIFEST)
	rm -rf $(DEMO_DIR)
