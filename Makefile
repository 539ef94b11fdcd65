# shakedown — common tasks. Every target installs what it needs through the project's own files;
# nothing has to be installed by hand beyond the Rust toolchain this machine kind ships.

CARGO     ?= cargo
PROFILE   ?= release
BIN       := target/$(PROFILE)/shakedown
SCENARIO  ?= scenarios/primary-crash.yaml
SEEDS     ?= 40
ARGS      ?=
OUT       ?= reports

.PHONY: help build run chaos explore test test-real bench fmt lint clean-reports real-up real-down report-screenshot

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

build: ## build the shakedown binary (release)
	$(CARGO) build --profile $(PROFILE) --bin shakedown

run: build ## run one scenario on the simulation: make run SCENARIO=scenarios/steady-state.yaml
	$(BIN) run $(SCENARIO) --out $(OUT)

chaos: build ## run every shipped scenario on the simulation; reports under reports/
	$(BIN) run scenarios/*.yaml scenarios/bugs/*.yaml --out $(OUT)

explore: build ## explore a scenario over many seeds: make explore SCENARIO=... SEEDS=40 ARGS='--swarm'
	$(BIN) explore $(SCENARIO) --seeds $(SEEDS) --out $(OUT) $(ARGS)

test: ## the test suite (simulation and unit tests; no external services)
	$(CARGO) test --all-targets

test-real: ## the real-adapter tests: start PostgreSQL primary + standby (installed if missing), run them, stop
	scripts/real-services.sh up
	status=0; \
	$(CARGO) test --features real --test real -- --test-threads=1 || status=$$?; \
	[ $$status -ne 0 ] || $(CARGO) test --features real --test real_failover -- --test-threads=1 --nocapture || status=$$?; \
	scripts/real-services.sh down; exit $$status

bench: ## criterion benchmarks (release): simulation speed, checkers, report, workload
	$(CARGO) bench

fmt: ## format the code
	$(CARGO) fmt

lint: ## formatting and clippy, as CI checks them
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --all-targets --features real -- -D warnings

real-up: ## install (if missing) and start PostgreSQL primary + standby and RabbitMQ on loopback
	scripts/real-services.sh up

real-down: ## stop what real-up started
	scripts/real-services.sh down

report-screenshot: build ## run primary-crash (async), render its report in headless Chromium, check it is not blank
	$(BIN) run scenarios/primary-crash.yaml --set stack.replication=async --out $(OUT) || true
	scripts/screenshot.sh $(OUT)/primary-crash/7/report.html $(OUT)/report-screenshot.png 1280x2600

clean-reports: ## delete generated reports
	find $(OUT) -mindepth 1 ! -name .gitkeep -delete
