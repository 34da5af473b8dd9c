#!/usr/bin/env bash
# Put pillow-simd (Pillow's fork with SIMD resampling: the same `PIL`, a 3x faster resize) in place of Pillow in
# a venv, or put Pillow back. Called by `make install`; see the Makefile.
#
#   infra/pillow-simd.sh VENV VERSION     swap pillow-simd VERSION in (best effort)
#   infra/pillow-simd.sh VENV off         put Pillow back
#
# pillow-simd ships no wheels, so one is built here: with the SSE4 code paths every x86-64 CPU since 2008 runs
# (an AVX2 build is barely faster and would die with SIGILL on a CPU without AVX2 if the venv were carried
# there), a C compiler, and Debian's libjpeg, zlib and libwebp headers (installed with apt when missing and
# allowed). Where any of that fails, Pillow stays, this says why, and it exits 1 so make does not record the
# swap; `make install` goes on either way.
set -u
venv=$1 version=$2
bin=$venv/bin
headers="libjpeg-dev zlib1g-dev libwebp-dev"

pillow_back() {
    "$bin/pip" uninstall -q -y pillow-simd >/dev/null 2>&1
    "$bin/pip" install -q --force-reinstall --no-deps "$(sed -n 's/^ *"\(pillow[^"]*\)",$/\1/p' pyproject.toml)"
}

if [ "$version" = off ]; then
    if "$bin/pip" show -q pillow-simd >/dev/null 2>&1; then pillow_back && echo "pillow-simd removed; Pillow is back"; fi
    exit 0
fi

give_up() { echo "pillow-simd: $1; keeping Pillow (image ingest works, its resize is slower)" >&2; exit 1; }

command -v cc >/dev/null || give_up "no C compiler (cc) to build it"
if ! dpkg -s $headers >/dev/null 2>&1; then
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    { $sudo apt-get update -q && $sudo apt-get install -y -q $headers; } >/dev/null 2>&1 \
        || give_up "cannot install the headers it builds against ($headers)"
fi
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$bin/pip" wheel -q --no-cache-dir --no-deps --no-binary :all: -w "$wheels" "pillow-simd==$version" \
    || give_up "its build failed"
"$bin/pip" uninstall -q -y pillow
if ! "$bin/pip" install -q --no-deps --force-reinstall "$wheels"/pillow_simd-*.whl \
    || ! "$bin/python" -c "from PIL import Image, features; assert features.check('jpg') and features.check('webp'); Image.new('RGB', (64, 48)).resize((16, 12), Image.Resampling.LANCZOS)"; then
    pillow_back
    give_up "the built wheel does not decode JPEG and WebP"
fi
echo "pillow-simd $version in place of Pillow ($("$bin/python" -c 'import PIL; print(PIL.__version__)'))"
