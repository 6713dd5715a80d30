# The Lottery Ticket Book: `make test` and `make book` each do all their own set-up.
#   make test                 unit tests + chapter notebooks (nbval) + book build tests
#   make book                 execute chapters (papermill, profile from book/chapters.yml, default
#                             quick) and render the HTML book into _build/html/index.html
#   make book PROFILE=smoke   the same with every chapter at the cheap `smoke` profile
#   make book WORKERS=1       train in one process (the default: two of one thread each, README, Speed)
#   make book EXECUTOR=ray    train each network as a Ray task (README, Ray)
#   make book STACK=16        train up to 16 networks of one schedule as one computation: a GPU (README, GPU)
#   make bench | make data | make lock | make clean | make distclean
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PROFILE ?=
# two training processes unless a stack or another executor is asked for (each refuses workers): on the
# AVX2-only EPYC one process executed the quick book in 28 min of its 30 (README, Time budgets)
WORKERS ?= $(if $(STACK)$(EXECUTOR),,2)
EXECUTOR ?=
STACK ?=
# the venv is (re)installed whenever the lock or pyproject.toml changes
DEPS_HASH := $(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
STAMP  := $(VENV)/.installed-$(DEPS_HASH)

.PHONY: help venv data test book bench browser-deps lock clean distclean

help:
	@sed -n '2,8p' Makefile | sed 's/^# \{0,1\}//'

venv: $(STAMP)

$(STAMP):
	@test -x $(PY) || { echo "== creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "== installing requirements.lock into $(VENV) (torch CUDA build, ~6 GB; runs on the CPU)"
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.lock
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

# Data sets (MNIST, CIFAR-10, ...) into data/; the fetcher skips what is already there.
data: venv
	$(PY) -m lt_core data fetch all

# Chromium + ChromeDriver for the browser tests (Debian packages; needs root).
browser-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "== installing chromium + chromium-driver (apt)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
	    echo "== chromium/chromedriver missing and not root: browser tests will be skipped"; \
	fi

# One pytest run: unit tests, book build tests, and every chapter notebook under nbval
# (notebooks run with their own default parameters; LT_PROFILE=smoke is offered as a hint).
# The notebooks train into an empty run store (the real book of the page tests trains into it first,
# so nbval finds those smoke units stored): results/ may hold runs of an older engine, whose
# numbers differ from the committed outputs by summation order.
TEST_RESULTS := $(CURDIR)/_build/test-results
test: venv data browser-deps
	rm -rf $(TEST_RESULTS)
	LT_RESULTS=$(TEST_RESULTS) LT_PROFILE=smoke $(PY) -m pytest tests book --nbval-lax --nbval-current-env -p no:cacheprovider

book: venv data
	$(PY) tools/build_book.py $(if $(PROFILE),--profile $(PROFILE)) $(if $(WORKERS),--workers $(WORKERS)) $(if $(EXECUTOR),--executor $(EXECUTOR)) $(if $(STACK),--stack $(STACK))
	@echo "== open _build/html/index.html"

bench: venv data
	$(PY) -m lt_core bench

# Regenerate requirements.lock from the ranges in pyproject.toml (run after changing them).
lock: venv
	$(PY) -m pip install --disable-pip-version-check -q -e '.[book,test,ray]'
	@{ echo "# Exact versions the book is executed and tested with (Python 3.11, x86_64, CPU)."; \
	   echo "# Generated: pip freeze --exclude-editable of .venv after 'pip install -e .[book,test,ray]'."; \
	   echo "# Regenerate with: make lock   (ranges live in pyproject.toml)"; \
	   echo "# torch 2.14.1 pulls CUDA wheels (nvidia-*, triton); they are installed but torch runs on the CPU."; \
	   $(PY) -m pip freeze --exclude-editable --disable-pip-version-check; } > requirements.lock.new
	mv requirements.lock.new requirements.lock
	@echo "== requirements.lock updated; update the pins in environment.yml to match (tests check it)"

clean:
	rm -rf _build .pytest_cache
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
