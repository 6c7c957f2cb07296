# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when it is
# missing and (re)installs the project when pyproject.toml changed, so both are idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-tools bench-tools check bench integration venv clean install

.venv/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml .venv/bin/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# `make demo SECONDS=10` for a shorter run (the story is compressed to fit; 10 s or more).
demo: $(STAMP)
	$(BIN)/edge demo $(if $(SECONDS),--seconds $(SECONDS))

test: $(STAMP) test-tools
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist worksteal || test $$? -eq 5

# Tools the tests run besides Python: systemd-analyze checks the unit `edge init` writes;
# headless Chromium and its WebDriver run the browser tests of `edge serve` (tests/web/).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
test-tools:
	@command -v systemd-analyze >/dev/null 2>&1 || { \
	  echo "installing systemd-analyze (Debian package systemd)"; \
	  $(SUDO) apt-get install -y -qq --no-install-recommends systemd \
	  || { $(SUDO) apt-get update -qq && \
	       $(SUDO) apt-get install -y -qq --no-install-recommends systemd; }; }
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || { \
	  echo "installing headless Chromium (Debian packages chromium, chromium-driver)"; \
	  $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver \
	  || { $(SUDO) apt-get update -qq && \
	       $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver; }; }

# A production install on a gateway: a venv of its own with the runtime dependencies only (no
# test or lint tools), `edge` linked onto PATH. Run it again to upgrade to this checkout.
# `make install PREFIX=/opt/edge-qc BINDIR=/usr/local/bin` (the defaults; needs root for them).
PREFIX ?= /opt/edge-qc
BINDIR ?= /usr/local/bin
install:
	test -x $(PREFIX)/bin/python || $(PYTHON) -m venv $(PREFIX)
	$(PREFIX)/bin/python -m pip install --quiet --upgrade pip
	$(PREFIX)/bin/python -m pip install --quiet --upgrade --force-reinstall --no-deps .
	$(PREFIX)/bin/python -m pip install --quiet .
	mkdir -p $(BINDIR)
	ln -sf $(PREFIX)/bin/edge $(BINDIR)/edge
	$(BINDIR)/edge --version

check: $(STAMP)
	$(BIN)/python tools/linktree.py build/typecheck
	MYPYPATH=build/typecheck $(BIN)/python -m mypy -p edge
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .

# The resource bench's peer (issue 18): Node-RED 4 and node-red-contrib-modbus, pinned in
# tools/nodered/package.json, from the npm registry with the machine's Node.js.
bench-tools:
	@test -f tools/nodered/node_modules/node-red/red.js || { \
	  command -v npm >/dev/null 2>&1 || { echo "bench-tools: npm (Node.js) is needed for the Node-RED peer"; exit 1; }; \
	  echo "installing Node-RED for the resource bench (tools/nodered)"; \
	  npm install --prefix tools/nodered --no-audit --no-fund --loglevel=error; }

bench: $(STAMP) bench-tools
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/bench -s -o testpaths=tests/bench -o 'norecursedirs=.* build'

clean:
	rm -rf $(VENV) build *.egg-info
