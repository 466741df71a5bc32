# The two commands of the README's quick start, and what CI runs (.ci/run -> `make test`).
# Each target installs what it needs into .venv first, so a fresh machine needs only
# Python >= 3.10, Node.js >= 20 with npm, and make.

PYTHON ?= python3
VENV   := .venv
PIP    := $(VENV)/bin/python -m pip

.PHONY: demo test install-demo install-test azurite lint clean system-test-deps

demo: install-demo azurite
	$(VENV)/bin/attachfs demo

test: install-test azurite system-test-deps lint
	$(VENV)/bin/python -m pytest

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install-demo: $(VENV)/bin/python
	$(PIP) install --quiet -c constraints.txt -e '.[demo]'

install-test: $(VENV)/bin/python
	$(PIP) install --quiet -c constraints.txt -e '.[test]'

# Azurite (Azure Blob emulator) from the npm registry, pinned by tools/azurite/package-lock.json.
azurite:
	cd tools/azurite && npm ci --no-audit --no-fund --silent

# Debian packages some tests drive for real: nginx with its echo module (the soak and the
# connection-churn tests) and chromium (the docs' diagrams drawn by mermaid.js). Installed only
# when missing, and only as root with apt-get; otherwise those tests say why they cannot run.
SYSTEM_TEST_PACKAGES := nginx libnginx-mod-http-echo chromium

system-test-deps:
	@missing=""; \
	command -v nginx >/dev/null 2>&1 || missing="$$missing nginx"; \
	[ -e /usr/lib/nginx/modules/ngx_http_echo_module.so ] || missing="$$missing libnginx-mod-http-echo"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing$$missing (apt-get)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Static checks: style, the one-way layering of the package, and types (strict on src/).
lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) tools/azurite/node_modules

# Side-by-side read benchmark of attachfs and its peers against a local nginx
# (benchmarks/README.md). Installs nginx and libnginx-mod-http-echo (the cloud-like link of
# profile e) with apt-get when they are missing and we are root.
# `make bench BENCH_ARGS=--quick` runs in a few minutes; the full run takes ~30.
BENCH_ARGS ?=
# The soak: SOAK_MINUTES of mixed reads with faults injected, after counting the pooled
# connections each read pattern throws away (benchmarks/README.md, "The soak").
SOAK_MINUTES ?= 10
SOAK_ARGS ?=

.PHONY: bench install-bench soak

install-bench: $(VENV)/bin/python
	$(PIP) install --quiet -c constraints.txt -e '.[bench]'

bench: install-bench
	$(VENV)/bin/python -m benchmarks $(BENCH_ARGS)

soak: install-bench
	$(VENV)/bin/python -m benchmarks.churn
	$(VENV)/bin/python -m benchmarks.soak --minutes $(SOAK_MINUTES) \
		--json benchmarks/results/tmp/soak.json $(SOAK_ARGS)
