# spoolfs: see README.md. Every target works on a fresh machine once
# scripts/deps (which .ci/run and make test run) has installed what it names.

GO         ?= go
BIN        ?= bin/spoolfs
PREFIX     ?= /usr/local
MOUNTPOINT ?= /mnt/scratch
GOBIN      := $(shell $(GO) env GOPATH)/bin
# Integration tests mount FUSE filesystems: they need root and /dev/fuse.
TESTFLAGS  ?= -race -count=1 -timeout 12m
# A count, not a duration: with -fuzztime=10s the fuzzer now and then
# failed with "context deadline exceeded" when time ran out while it was
# minimizing a new input.
FUZZTIME   ?= 200000x
# FuzzFile runs dozens of operations on two pools (plain, sealed) per input.
FUZZTIME_FILE ?= 3000x
# Minimizing each new interesting input may take a minute by default, with
# no inputs counted meanwhile (CI once sat 45 s at one count); a bounded
# number of tries keeps the run short and still shrinks what it can.
FUZZMIN    ?= -fuzzminimizetime=200x

.PHONY: all build mount install man deps lint test unit fuzz bench clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/spoolfs

# Build, then mount with the defaults at $(MOUNTPOINT) (run as root). A live
# spoolfs there already is left alone, and that is no failure: what the
# target promises, a spoolfs at $(MOUNTPOINT), holds; only it still runs the
# build that mounted it. A dead one (its daemon killed) is replaced. mkdir
# fails on a dead mount, which 'spoolfs mount' then clears.
mount: build
	@mkdir -p $(MOUNTPOINT) 2>/dev/null || true
	@if out=$$(./$(BIN) mount $(MOUNTPOINT) 2>&1); then \
		echo "spoolfs mounted at $(MOUNTPOINT); 'df -h $(MOUNTPOINT)' shows its size, '$(BIN) umount $(MOUNTPOINT)' deletes everything"; \
	elif echo "$$out" | grep -q "already mounted"; then \
		echo "$$out"; \
		echo "make mount: left as it is; '$(BIN) umount $(MOUNTPOINT)' first to mount this build"; \
	else \
		echo "$$out" >&2; exit 1; \
	fi

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/spoolfs
	install -D -m 0644 cmd/spoolfs/spoolfs.8 $(DESTDIR)$(PREFIX)/share/man/man8/spoolfs.8
	./$(BIN) completion bash | install -D -m 0644 /dev/stdin $(DESTDIR)$(PREFIX)/share/bash-completion/completions/spoolfs

# Regenerate the manual page from the flag definitions.
man:
	$(GO) run ./cmd/spoolfs man > cmd/spoolfs/spoolfs.8

deps:
	./scripts/deps

lint: deps
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if [ -x "$(GOBIN)/staticcheck" ]; then $(GOBIN)/staticcheck ./...; \
	else echo "staticcheck not installed (go install honnef.co/go/tools/cmd/staticcheck@v0.8.2)"; exit 1; fi
	GOOS=darwin $(GO) vet ./spill/ ./quota/ ./fs/... ./cmd/...
	GOOS=freebsd $(GO) vet ./spill/ ./quota/ ./fs/... ./cmd/...

# The whole suite: lint, unit and integration tests under -race, then each
# fuzz target for $(FUZZTIME) inputs.
test: deps lint unit fuzz

# Where the kernel offers FUSE over io_uring (the fuse module's
# enable_uring; .ci/run turns it on), the first run already covers it in
# the POSIX matrix (ram-uring, spilled-uring) and in fs/fuseuring; fs's
# own mounting tests and the integration tests that depend most on how
# requests are served (sessions, quotas, mmap, tools, shutdown) then run
# again over it: about two minutes more, where the whole of test/ again
# would double its five minutes.
URING_TESTS ?= ^(TestSession|TestQuota|TestUserQuota|TestMmap|TestCopy|TestRemoveTrees|TestShutdown|TestStatfs|TestWriteOnlyOpen|TestXattr|TestTransport)
URING_PARAM := /sys/module/fuse/parameters/enable_uring

unit:
	$(GO) test $(TESTFLAGS) ./...
	@# The go-fuse copy is a module of its own, which ./... leaves out: its
	@# tests of spoolfs's changes to it (test/devread_test.go covers the
	@# device reads through a real mount).
	cd fs/internal/go-fuse && $(GO) test $(TESTFLAGS) -run '^TestServerHandleRequest' ./fuse/
	@# Counts page faults, which the race detector's shadow memory adds to.
	$(GO) test -count=1 -run '^TestRAMWriteFaultsEachNewPageOnce$$' ./spill/
	@if [ "$$(cat $(URING_PARAM) 2>/dev/null)" = Y ]; then \
		echo "SPOOLFS_TEST_TRANSPORT=uring: again over FUSE over io_uring"; \
		SPOOLFS_TEST_TRANSPORT=uring $(GO) test $(TESTFLAGS) ./fs/... && \
		SPOOLFS_TEST_TRANSPORT=uring $(GO) test $(TESTFLAGS) -run '$(URING_TESTS)' ./test/; \
	else \
		echo "FUSE over io_uring is off here ($(URING_PARAM)): tested over /dev/fuse only"; \
	fi

fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzAccount$$' -fuzztime=$(FUZZTIME) $(FUZZMIN) ./quota/
	$(GO) test -run='^$$' -fuzz='^FuzzFile$$' -fuzztime=$(FUZZTIME_FILE) $(FUZZMIN) ./spill/
	$(GO) test -run='^$$' -fuzz='^FuzzPolicyValue$$' -fuzztime=$(FUZZTIME) $(FUZZMIN) ./fs/control/
	$(GO) test -run='^$$' -fuzz='^FuzzParseSize$$' -fuzztime=$(FUZZTIME) $(FUZZMIN) ./cmd/spoolfs/
	$(GO) test -run='^$$' -fuzz='^FuzzMountOptions$$' -fuzztime=$(FUZZTIME) $(FUZZMIN) ./cmd/spoolfs/
	$(GO) test -run='^$$' -fuzz='^FuzzDuration$$' -fuzztime=$(FUZZTIME) $(FUZZMIN) ./cmd/spoolfs/

# Go micro-benchmarks of the hot paths, what a mass expiry costs other
# requests, what one FUSE round trip costs (spoolfs beside tmpfs and the C
# reference daemon, scripts/bench-ref, when libfuse3-dev is installed),
# then scripts/bench: spoolfs side by side with tmpfs, the raw disk and the
# C reference (needs root, fio, hyperfine, time).
bench: build
	$(GO) test -run='^$$' -bench=. -benchmem ./spill/ ./quota/ ./fs/expiry/ ./cmd/spoolfs/
	$(GO) test -run='^$$' -bench=SessionMassExpiry -benchtime=1x -cpu=1,2 ./fs/
	$(GO) test -run='^$$' -bench=RoundTrip -benchtime=20000x -count=5 ./test/
	./scripts/bench

clean:
	rm -rf bin
