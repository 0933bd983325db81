# kubeloop: `make run` and `make test` set up whatever is missing, then do their job.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
SERVING_VENV := .venv-serving
TOOLS := .tools/bin
PY := $(VENV)/bin/python
CONFIG ?= examples/screening/config.yaml

# Python 3.11 for the main environment; Python 3.12 for seldon-core in the serving one.
PYTHON311 ?= $(shell command -v python3.11 || command -v python3)
# The newest installed pyenv 3.12.x (no patch release hard-coded), else python3.12 on PATH.
PYTHON312 ?= $(shell v="$$(pyenv versions --bare 2>/dev/null | grep -E '^3\.12\.[0-9]+$$' | sort -V | tail -1)"; \
	if [ -n "$$v" ] && [ -x "$$(pyenv root)/versions/$$v/bin/python3" ]; then echo "$$(pyenv root)/versions/$$v/bin/python3"; \
	else command -v python3.12; fi)

UV_VERSION := 0.13.10
UV_HOME := $(HOME)/.cache/kubeloop/uv-$(UV_VERSION)
UV := $(UV_HOME)/bin/uv

BENCHES := $(patsubst tests/benchmarks/bench_%.py,%,$(wildcard tests/benchmarks/bench_*.py))

.PHONY: help setup run loop-images test lint test-binaries docs bench compile clean tools lock chromium wrk card-png images $(addprefix bench-,$(BENCHES)) bench-validate-images \
	bench-train-images bench-serve-images bench-drift-images

help:
	@echo "make run      set up, then run the closed loop of the screening example (kubeloop loop)"
	@echo "make loop-images  the same loop for images (examples/image_loop): scanner B joins, retrain on served images"
	@echo "make test     set up, then lint and run every test (unit, integration, e2e)"
	@echo "make lint     ruff + mypy"
	@echo "make docs     build the documentation site into site/ (mkdocs, --strict)"
	@echo "make bench    run every benchmark (make bench-NAME for one)"
	@echo "make compile  refresh the compiled pipelines, the monitor CronJob and the operator base in manifests/,"
	@echo "              and the chart's generated crds/ and files/pipelines/"
	@echo "make card-png render the newest model card to PNG (headless Chromium, no network)"
	@echo "make images   print the docker build and push commands of every image (images/*/Dockerfile)"
	@echo "make tools    put helm and kubectl in $(TOOLS)"
	@echo "make clean    remove environments, tools and local run outputs"

# uv installs the locked environments, from its cache outside the clone (~/.cache/uv): a fresh
# clone's setup takes 35 s. pip's HTTP cache stays empty on these machines (340 KB after a
# full install), so each setup with pip downloaded torch and its CUDA libraries again.
# --compile-bytecode as pip does: with PYTHONDONTWRITEBYTECODE set, nothing writes .pyc later.
$(UV):
	@test -x "$(PYTHON311)" || { echo "Python 3.11 not found: set PYTHON311=/path/to/python3.11"; exit 1; }
	rm -rf $(UV_HOME) && $(PYTHON311) -m venv $(UV_HOME)
	$(UV_HOME)/bin/python -m pip install --quiet uv==$(UV_VERSION)

$(VENV)/.ready: requirements/main.lock pyproject.toml | $(UV)
	@test -x "$(PYTHON311)" || { echo "Python 3.11 not found: set PYTHON311=/path/to/python3.11"; exit 1; }
	@[ -x $(PY) ] || $(UV) venv --quiet --seed --python $(PYTHON311) $(VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -r requirements/main.lock
	$(UV) pip install --quiet --compile-bytecode --python $(PY) --no-deps -e .
	@touch $@

$(SERVING_VENV)/.ready: requirements/serving.lock | $(UV)
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found: set PYTHON312=/path/to/python3.12"; exit 1; }
	@[ -x $(SERVING_VENV)/bin/python ] || $(UV) venv --quiet --seed --python $(PYTHON312) $(SERVING_VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(SERVING_VENV)/bin/python -r requirements/serving.lock
	@touch $@

$(TOOLS)/helm $(TOOLS)/kubectl: scripts/fetch_tools.py
	$(PYTHON311) scripts/fetch_tools.py $(TOOLS)
	@touch $(TOOLS)/helm $(TOOLS)/kubectl

tools: $(TOOLS)/helm $(TOOLS)/kubectl

setup: $(VENV)/.ready $(SERVING_VENV)/.ready tools chromium

# Headless Chromium (Debian's package) renders model cards to PNG for tests and `make card-png`.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; \
	  else echo "model cards render with Chromium: run 'sudo apt-get install chromium'"; exit 1; fi; }

# wrk (Debian's package) is the load generator of `make bench-serve`.
wrk:
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }; \
	  else echo "bench-serve needs wrk: run 'sudo apt-get install wrk'"; exit 1; fi; }

CARD ?= $(shell ls -t .kubeloop/models/*/*/card.html 2>/dev/null | head -1)
card-png: $(VENV)/.ready chromium
	@test -n "$(CARD)" || { echo "no model card yet: 'make run' first, or CARD=path/to/card.html"; exit 1; }
	$(PY) scripts/render_card.py $(CARD) $(CARD:.html=.png)

run: $(VENV)/.ready $(SERVING_VENV)/.ready
	$(VENV)/bin/kubeloop loop --config $(CONFIG)

# The image loop: scanner A's model meets scanner B, retrains on the served images, rolls out.
loop-images: $(VENV)/.ready $(SERVING_VENV)/.ready
	$(VENV)/bin/kubeloop loop --config examples/image_loop/config.yaml

lint: $(VENV)/.ready
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The tests' servers built from the Go module proxy: kube-apiserver, kube-controller-manager and
# etcd (tools/kubecluster), the S3 server versitygw (tools/s3server); cached under
# ~/.cache/kubeloop/ by version, so a fresh clone reuses them.
test-binaries: $(VENV)/.ready
	@$(VENV)/bin/python scripts/test_binaries.py >/dev/null

# The documentation site (mkdocs.yml): reference pages are generated from the code as it builds.
docs: $(VENV)/.ready
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "site/index.html"

test: setup lint test-binaries
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(VENV)/bin/pytest

bench: $(addprefix bench-,$(BENCHES))
	@[ -n "$(BENCHES)" ] || echo "no benchmarks yet (tests/benchmarks/bench_*.py)"

$(addprefix bench-,$(BENCHES)): bench-%: $(VENV)/.ready
	$(PY) tests/benchmarks/bench_$*.py

bench-serve bench-serve_images: $(SERVING_VENV)/.ready wrk

# The issue's name for the image serving benchmark (tests/benchmarks/bench_serve_images.py).
bench-serve-images: bench-serve_images

# The issue's name for the embedding drift benchmark (tests/benchmarks/bench_drift_images.py).
bench-drift-images: bench-drift_images

# The issue's name for the image gate's benchmark (tests/benchmarks/bench_validate_images.py).
bench-validate-images: bench-validate_images

# The issue's name for the image training benchmark (tests/benchmarks/bench_train_images.py).
bench-train-images: bench-train_images

compile: $(VENV)/.ready
	$(VENV)/bin/kubeloop compile --out manifests/pipelines --monitor-out manifests/monitor
	$(VENV)/bin/python -m operators.manifests --out manifests/base --chart helm/kubeloop

images: $(VENV)/.ready
	@$(PY) -m components.common.images

lock:
	rm -rf /tmp/kubeloop-lock && $(PYTHON311) -m venv /tmp/kubeloop-lock
	/tmp/kubeloop-lock/bin/pip install --quiet -r requirements/main.in
	{ echo "# Generated from requirements/main.in by 'make lock' (pip freeze of a fresh venv). Python 3.11."; \
	  /tmp/kubeloop-lock/bin/pip freeze --exclude-editable | sort -f; } > requirements/main.lock
	rm -rf /tmp/kubeloop-lock && $(PYTHON312) -m venv /tmp/kubeloop-lock
	/tmp/kubeloop-lock/bin/pip install --quiet -r requirements/serving.in
	{ echo "# Generated from requirements/serving.in by 'make lock' (pip freeze of a fresh venv). Python 3.12."; \
	  /tmp/kubeloop-lock/bin/pip freeze --exclude-editable | sort -f; } > requirements/serving.lock
	rm -rf /tmp/kubeloop-lock

clean:
	rm -rf $(VENV) $(SERVING_VENV) .tools .kubeloop local_outputs build site *.egg-info \
		.pytest_cache .mypy_cache .ruff_cache examples/*/data
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
