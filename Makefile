# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# The virtual environment is built when missing or when pyproject.toml changed.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEPS_STAMP := $(VENV)/.deps-$(shell sha256sum pyproject.toml | cut -c1-16)
PYTEST_ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install pillow browser demo test lint bench-ingest bench-train bench-caption bench-train-video bench-ingest-videos bench-distance bench-eval bench-curate bench-scale-store bench-scale bench-scale-ingest bench-scale-plan bench-scale-distance bench-cluster bench-train-ddp serve schedule-on schedule-off cluster-up cluster-down clean

# Reference tools kept apart from the project's dependencies, each in its own folder under $(VENV)/opt and
# put on PYTHONPATH only where used. They are targets of their own, so an environment built before one was
# added (CI keeps its venv across commits, keyed by pyproject.toml) gets it too.
OPT_WEBDATASET := $(VENV)/opt/webdataset-0.2.86/webdataset
OPT_CLIP_BENCHMARK := $(VENV)/opt/clip_benchmark-1.6.2/clip_benchmark

install: $(DEPS_STAMP) $(OPT_WEBDATASET) $(OPT_CLIP_BENCHMARK) pillow
	@# The project itself is (re)linked on every call: a venv kept outside the
	@# clone (CI's cache) must point at this checkout, not an earlier one.
	@$(BIN)/pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || \
		$(BIN)/pip install --no-deps --no-build-isolation -e .

# pillow-simd in place of Pillow (the same `PIL`; the crawl's resize 3x faster, ingest 2.1-2.4x img2dataset's
# images/s instead of 1.7-1.8x: docs/benchmarks.md). It ships no wheels, so infra/pillow-simd.sh builds one
# (about 15 s; a C compiler and Debian's libjpeg, zlib and libwebp headers). Best effort: where it cannot be
# built, Pillow stays and make says why. PILLOW_SIMD=0 keeps (or puts back) Pillow. Redone after every
# dependency install, which puts Pillow back.
PILLOW_SIMD ?= 1
PILLOW_SIMD_VERSION := 12.1.1.post0
SIMD_STAMP := $(VENV)/.pillow-simd-$(PILLOW_SIMD_VERSION)
ifeq ($(PILLOW_SIMD),0)
pillow: | $(DEPS_STAMP)
	@rm -f $(SIMD_STAMP)
	@infra/pillow-simd.sh $(VENV) off
else
pillow: $(SIMD_STAMP)
$(SIMD_STAMP): $(DEPS_STAMP)
	@infra/pillow-simd.sh $(VENV) $(PILLOW_SIMD_VERSION) && touch $@ || true
endif

$(DEPS_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools
	$(BIN)/pip install -e '.[dev]'
	rm -f $(VENV)/.deps-* && touch $@

# open_clip 3.3's own trainer (the benchmark and a test run it) breaks on webdataset 1.0: the last 0.2.x.
$(OPT_WEBDATASET): | $(DEPS_STAMP)
	$(BIN)/pip install -q --no-deps --target $(VENV)/opt/webdataset-0.2.86 webdataset==0.2.86

# clip_benchmark's captioning metric code, the reference of the captioning parity tests (tests/support/cb_captioning.py).
$(OPT_CLIP_BENCHMARK): | $(DEPS_STAMP)
	$(BIN)/pip install -q --no-deps --target $(VENV)/opt/clip_benchmark-1.6.2 clip_benchmark==1.6.2

demo: install
	$(BIN)/python -m clipline.flows.demo

test: install browser
	tests/suite.sh $(BIN)/pytest $(PYTEST_ARGS)

# The report's test opens the page in headless Chromium: Debian's package, installed once (Playwright's
# browsers would come from a CDN). Needs root, or sudo.
browser:
	test -x /usr/bin/chromium || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

lint: install
	$(BIN)/ruff check flows tasks pipelines tests bench

# The default mix of photo sizes (100-1500 px), then small photos (150-600 px: the small-image row).
bench-ingest: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/ingest.py --sides 150 600

bench-train: install
	$(BIN)/python bench/train.py

bench-caption: install
	$(BIN)/python bench/caption.py

bench-train-video: install
	$(BIN)/python bench/train_video.py

bench-ingest-videos: install
	$(BIN)/python bench/ingest_videos.py

bench-distance: install
	$(BIN)/python bench/distance.py

bench-eval: install
	$(BIN)/python bench/eval.py

# #15's growth measurements: ingest at 20k and 200k URLs, the store at 10M rows, shard planning, distances/eval.
bench-scale: bench-scale-ingest bench-scale-store bench-scale-plan bench-scale-distance

# Ingest at 20,000 and 200,000 URLs of small photos (writes 200,000 files under .bench/ingest, ~4 GB), with the
# idle Ray + Prefect baseline, and img2dataset at 20,000.
bench-scale-ingest: install
	$(BIN)/python bench/scale_ingest.py

bench-scale-store: install
	$(BIN)/python bench/scale_store.py

bench-scale-plan: install
	$(BIN)/python bench/scale_plan.py

bench-scale-distance: install
	$(BIN)/python bench/scale_distance.py

# The same ingest and training on 1, 2 and 3 worker nodes of infra/local-cluster.sh (as root), and a node kill.
bench-cluster: install
	$(BIN)/python bench/cluster.py

# Where training's CPU per sample goes as workers share one machine: the step alone, with and without DDP.
bench-train-ddp: install
	$(BIN)/python bench/train_ddp.py

bench-curate: install
	$(BIN)/python bench/curate.py
	$(BIN)/python bench/curate_learning.py

# A local Prefect server, the process work pool, `prefect deploy --all` (prefect.yaml) and a worker.
serve: install
	BIN=$(BIN) infra/serve.sh

# The pipeline's nightly schedule ships inactive; these switch it (a server must be running).
schedule-on: install
	$(BIN)/prefect deployment schedule resume pipeline/nightly --all

schedule-off: install
	$(BIN)/prefect deployment schedule pause pipeline/nightly --all

# A head and NODES worker nodes, each in its own network and mount namespace (as root; loopback nodes
# otherwise), and an S3 server on their bridge. `eval "$$(infra/local-cluster.sh env)"` points a shell at it.
NODES ?= 2
cluster-up: install
	VENV=$(VENV) infra/local-cluster.sh up $(NODES)

cluster-down:
	infra/local-cluster.sh down

clean:
	rm -rf .clipline .pytest_cache build dist
