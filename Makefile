# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# The virtual environment is built when missing or when pyproject.toml changed.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEPS_STAMP := $(VENV)/.deps-$(shell sha256sum pyproject.toml | cut -c1-16)
PYTEST_ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install install-simd uninstall-simd browser demo test lint bench-ingest bench-train bench-caption bench-train-video bench-ingest-videos bench-distance bench-eval bench-curate bench-scale-store bench-scale bench-scale-ingest bench-scale-plan bench-scale-distance bench-cluster serve schedule-on schedule-off cluster-up cluster-down clean

# Reference tools kept apart from the project's dependencies, each in its own folder under $(VENV)/opt and
# put on PYTHONPATH only where used. They are targets of their own, so an environment built before one was
# added (CI keeps its venv across commits, keyed by pyproject.toml) gets it too.
OPT_WEBDATASET := $(VENV)/opt/webdataset-0.2.86/webdataset
OPT_CLIP_BENCHMARK := $(VENV)/opt/clip_benchmark-1.6.2/clip_benchmark

install: $(DEPS_STAMP) $(OPT_WEBDATASET) $(OPT_CLIP_BENCHMARK)
	@# The project itself is (re)linked on every call: a venv kept outside the
	@# clone (CI's cache) must point at this checkout, not an earlier one.
	@$(BIN)/pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || \
		$(BIN)/pip install --no-deps --no-build-isolation -e .

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

# Opt-in: pillow-simd, Pillow's fork with SIMD resampling (the same `PIL`), in place of Pillow. The crawl's
# resize is 3.3x faster with it (docs/benchmarks.md). It ships no wheels: the wheel is built here for this CPU
# (AVX2 where /proc/cpuinfo has it), with a C compiler and Debian's libjpeg, zlib and libwebp headers, before
# Pillow is swapped out. A later dependency install (pyproject.toml changed) puts Pillow back; so does
# `make uninstall-simd`.
PILLOW_SIMD := pillow-simd==12.1.1.post0
SIMD_HEADERS := libjpeg-dev zlib1g-dev libwebp-dev
install-simd: install
	dpkg -s $(SIMD_HEADERS) >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $(SIMD_HEADERS); }
	rm -rf $(VENV)/simd-wheel
	CC="cc $$(grep -qw avx2 /proc/cpuinfo && echo -mavx2)" $(BIN)/pip wheel -q --no-cache-dir --no-deps --no-binary :all: \
		-w $(VENV)/simd-wheel "$(PILLOW_SIMD)"
	$(BIN)/pip uninstall -q -y pillow
	$(BIN)/pip install -q --no-deps --force-reinstall $(VENV)/simd-wheel/pillow_simd-*.whl
	$(BIN)/python -c "from PIL import features; import PIL; assert features.check('jpg') and features.check('webp'); print('PIL', PIL.__version__)"

uninstall-simd:
	$(BIN)/pip uninstall -q -y pillow-simd
	$(BIN)/pip install -q --force-reinstall --no-deps "$$(sed -n 's/^ *"\(pillow[^"]*\)",$$/\1/p' pyproject.toml)"
	$(BIN)/python -c "import PIL; print('PIL', PIL.__version__)"

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
