# verdigris: build, demo and test from a clean checkout.
#   make demo   installs verdigris into .venv and runs the tour of the tutorial's examples
#   make test   builds everything and runs every test (cargo, then pytest, then the seed check)
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.deps-installed

.PHONY: demo test build sysdeps cargo-test pytest seed bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet "maturin>=1.5,<2" "pytest>=7" "greenlet>=3.0" gevent mypy requests redis gunicorn
	touch $(STAMP)

# Servers the tests talk to on loopback (Debian packages). Installed when missing and we may;
# otherwise the tests that need them are skipped with the reason.
sysdeps:
	@command -v redis-server >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null) \
	  || echo "redis-server not installed: redis tests will be skipped"; }

build: $(STAMP)
	$(VENV)/bin/maturin develop --release --quiet

demo: build
	$(VPY) examples/tour.py

cargo-test:
	cargo test --release --quiet

pytest: build
	$(VPY) -m pytest -q

seed: build
	@if [ -d ../shared/seed ]; then ../shared/seed/check.sh $(VPY); \
	else echo "seed: ../shared/seed not found, skipped (tests/test_seed.py covers the shipped copies)"; fi

test: sysdeps cargo-test pytest

bench: build
	$(VPY) -m benches

clean:
	rm -rf $(VENV) target
