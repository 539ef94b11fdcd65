# shakedown — common tasks. Every target installs what it needs through the project's own files;
# nothing has to be installed by hand beyond the Rust toolchain this machine kind ships.

CARGO     ?= cargo
PROFILE   ?= release
BIN       := target/$(PROFILE)/shakedown
SCENARIO  ?= scenarios/primary-crash.yaml
SEEDS     ?= 40
ARGS      ?=
OUT       ?= reports
BACKEND   ?= sim
# The containers backend is behind a cargo feature (the default build needs no Docker).
FEATURES  := $(if $(filter containers,$(BACKEND)),--features containers,)
BACKEND_DEPS := $(if $(filter containers,$(BACKEND)),container-deps,)

.PHONY: help build run chaos explore campaign test test-real test-containers test-containers-all test-compose container-deps up down bench fmt lint clean-reports real-up real-down report-screenshot index-screenshot image docs examples

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

build: ## build the shakedown binary (release; BACKEND=containers adds that backend)
	$(CARGO) build --profile $(PROFILE) --bin shakedown $(FEATURES)

run: build $(BACKEND_DEPS) ## run one scenario: make run SCENARIO=scenarios/steady-state.yaml [BACKEND=containers]
	$(BIN) run $(SCENARIO) --out $(OUT) --backend $(BACKEND)

chaos: build $(BACKEND_DEPS) ## run every shipped scenario [BACKEND=containers]; reports under reports/
	$(BIN) run scenarios/*.yaml scenarios/bugs/*.yaml --out $(OUT) --backend $(BACKEND)

explore: build ## explore a scenario over many seeds: make explore SCENARIO=... SEEDS=40 ARGS='--swarm'
	$(BIN) explore $(SCENARIO) --seeds $(SEEDS) --out $(OUT) $(ARGS)

# A campaign's seeds per scenario: SEEDS when given (make campaign SEEDS=50), else 200.
CAMPAIGN_SEEDS = $(if $(filter command line environment,$(origin SEEDS)),$(SEEDS),200)

# Each scenario twice: `--swarm=all` (every fault kind) and, when it lists faults, `--swarm` (its
# own faults and drills), each into its own directory.
campaign: build ## every shipped scenario (not bugs/) explored with swarm schedules from every fault kind and from its own faults: make campaign [SEEDS=200]; reports under reports/campaign/
	@status=0; for file in scenarios/*.yaml; do \
		$(BIN) explore $$file --swarm=all --seeds $(CAMPAIGN_SEEDS) --jobs 2 --out $(OUT)/campaign/swarm-all $(ARGS) \
			|| { code=$$?; [ $$code -gt $$status ] && status=$$code; }; \
		if grep -q '^faults:' $$file; then \
			$(BIN) explore $$file --swarm --seeds $(CAMPAIGN_SEEDS) --jobs 2 --out $(OUT)/campaign/swarm $(ARGS) \
				|| { code=$$?; [ $$code -gt $$status ] && status=$$code; }; \
		fi; \
	done; exit $$status

test: ## the test suite (simulation and unit tests; no external services)
	$(CARGO) test --all-targets

# Everything that needs the real adapters or containers is compiled once, with one feature set
# (`containers` includes `real`) in the dev profile (dependencies optimised, our crate at -O1):
# the real-adapter tests, the containers and compose tests and the binary the node images carry
# share that one compilation. A fat-LTO release build would cost CI ten minutes for nothing the
# assertions need; `make build` / `make chaos` keep the release binary for people.
CI_FEATURES := --features containers
CI_BIN      := target/debug/shakedown

# real_failover last: each of its tests recreates the servers and a failover consumes them.
test-real: ## the real-adapter tests: start PostgreSQL primary + standby (WAL archived), RabbitMQ, s3s-fs and Redis (installed if missing), run them, stop
	scripts/real-services.sh up
	status=0; \
	$(CARGO) test $(CI_FEATURES) --test real -- --test-threads=1 || status=$$?; \
	[ $$status -ne 0 ] || $(CARGO) test $(CI_FEATURES) --test real_files -- --test-threads=1 --nocapture || status=$$?; \
	[ $$status -ne 0 ] || $(CARGO) test $(CI_FEATURES) --test real_backup -- --test-threads=1 --nocapture || status=$$?; \
	[ $$status -ne 0 ] || $(CARGO) test $(CI_FEATURES) --test real_failover -- --test-threads=1 --nocapture || status=$$?; \
	scripts/real-services.sh down; exit $$status

# The unit tests run are those the feature adds (the rest ran in `make test`). CI runs one
# containers test per system and fault family (CONTAINER_TESTS: test-name filters); the whole
# parity matrix — every shipped scenario and planted bug on containers — is
# `make test-containers-all` (or `make chaos BACKEND=containers`).
CONTAINER_TESTS ?= steady_state primary_crash a_frozen_primary queue_backpressure replica_partition \
	latency_between object_store_outage bug_no_fencing bug_skip_compensation backups_and_a_restore \
	failback_switches_back the_next_run_removes up_fault_heal
test-containers: container-deps ## the containers tests: unit tests with the feature, images built if missing, one scenario per system and fault family on real containers, cleanup
	$(CARGO) build $(CI_FEATURES) --bin shakedown
	$(CI_BIN) image build
	$(CARGO) test $(CI_FEATURES) --lib -- containers:: real:: cli:: compose::
	SHAKEDOWN_BIN=$(CURDIR)/$(CI_BIN) $(CARGO) test $(CI_FEATURES) --test containers -- --test-threads=1 $(CONTAINER_TESTS)

test-containers-all: ## every containers test: the full parity matrix (about twice test-containers' time)
	$(MAKE) test-containers CONTAINER_TESTS=

test-compose: container-deps ## compose stacks on containers (shortened): the Patroni example's leader crash and partition, explore on a compose stack, the query gateway seed's worker crash, latency on the investments seed; images built if missing; cleanup checked
	$(CARGO) build $(CI_FEATURES) --bin shakedown
	SHAKEDOWN_BIN=$(CURDIR)/$(CI_BIN) $(CARGO) test $(CI_FEATURES) --test compose_scenarios -- --test-threads=1 --nocapture
	SHAKEDOWN_BIN=$(CURDIR)/$(CI_BIN) $(CARGO) test $(CI_FEATURES) --test seed_stacks -- --test-threads=1 --nocapture

container-deps: ## what the containers backend needs beyond Docker: mmdebstrap (installed if missing), s3s-fs for the node image (built if missing)
	@command -v docker >/dev/null || { echo "the containers backend needs a Docker engine (docker not found)" >&2; exit 1; }
	@command -v mmdebstrap >/dev/null || { \
		[ "$$(id -u)" -eq 0 ] || { echo "mmdebstrap is missing; as root: apt-get install mmdebstrap" >&2; exit 1; }; \
		echo "installing mmdebstrap (Debian package) to build the base image" >&2; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null; }
	@scripts/real-services.sh s3s-fs >/dev/null

up: container-deps ## a scenario's stack in containers, no load or faults, endpoints printed, until Ctrl-C: make up SCENARIO=...
	$(CARGO) build --release --features containers --bin shakedown
	target/release/shakedown up $(SCENARIO)

down: ## remove every container, network and volume a containers run left (ours only, by label)
	$(CARGO) build --release --features containers --bin shakedown
	target/release/shakedown down

bench: ## criterion benchmarks (release): simulation speed, checkers, report, workload
	$(CARGO) bench

fmt: ## format the code
	$(CARGO) fmt

lint: ## formatting and clippy, as CI checks them: without features and with every feature (`containers` includes `real`)
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --all-targets --features containers -- -D warnings

# Each seed scenario must end in a verdict: 0 (passed) or 1 (a check failed: most seeds do, that is
# their finding); 2 (inconclusive), 254 (invalid) or 255 (harness error) fail the target.
examples: container-deps ## the seed systems of examples/seeds/ on containers, every scenario to a verdict; reports under reports/seeds/ (findings: examples/seeds/README.md)
	$(CARGO) build --profile $(PROFILE) --features containers --bin shakedown
	@code=0; $(BIN) run examples/seeds/*/*.yaml --out $(OUT)/seeds || code=$$?; \
	if [ $$code -gt 1 ]; then echo "make examples: exit $$code, not a verdict" >&2; exit $$code; fi

real-up: ## install (if missing) and start PostgreSQL primary + standby (WAL archived), RabbitMQ, s3s-fs and Redis on loopback
	scripts/real-services.sh up

real-down: ## stop what real-up started
	scripts/real-services.sh down

report-screenshot: build ## run primary-crash (async), render its report in headless Chromium, check it is not blank
	$(BIN) run scenarios/primary-crash.yaml --set stack.replication=async --out $(OUT) || true
	scripts/screenshot.sh '$(OUT)/primary-crash/7-stack.replication=async/report.html' $(OUT)/report-screenshot.png 1280x2600

index-screenshot: build ## run every shipped scenario (as make chaos), render the index in headless Chromium, check it is not blank and its filter works
	$(BIN) run scenarios/*.yaml scenarios/bugs/*.yaml --out $(OUT) --quiet || true
	scripts/screenshot.sh $(OUT)/index.html $(OUT)/index-screenshot.png 1400x1500
	scripts/index-check.sh $(OUT)/index.html

image: container-deps ## build the containers backend's images here, no registry needed
	$(CARGO) build --release --features containers --bin shakedown
	target/release/shakedown image build

# mdBook for the user guide: the one on PATH, else a pinned one built once into target/tools/
# (`cargo install`, a few minutes; Debian packages none). The book goes to docs/book/ (git-ignored).
MDBOOK_VERSION := 0.4.52
MDBOOK_TOOLS   := target/tools/bin/mdbook
MDBOOK         ?= $(shell command -v mdbook 2>/dev/null || echo $(MDBOOK_TOOLS))

docs: ## build the user guide (mdBook, docs/) into docs/book/; installs mdbook into target/tools/ if missing
	@[ -x "$(MDBOOK)" ] || { \
		echo "building mdbook $(MDBOOK_VERSION) into target/tools/ (cargo install, a few minutes, once)" >&2; \
		env -u CARGO_TARGET_DIR $(CARGO) install mdbook --version "=$(MDBOOK_VERSION)" --locked \
			--no-default-features --features search --root target/tools; }
	$(MDBOOK) build docs
	@echo "the guide: docs/book/index.html"

clean-reports: ## delete generated reports
	find $(OUT) -mindepth 1 ! -name .gitkeep -delete
