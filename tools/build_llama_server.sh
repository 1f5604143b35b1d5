#!/usr/bin/env bash
# Build llama.cpp's llama-server from the llama.cpp source vendored in the llama-cpp-python sdist the venv has
# installed, so that the server tests run the same llama.cpp commit as the library tests (0c1e57098 for 0.3.36).
#
#   tools/build_llama_server.sh [VENV]      (default .venv)
#
# Result: VENV/llama-server/bin/llama-server and the stamp VENV/llama-server/.built-<version>; a second run with
# the same llama-cpp-python version does nothing. CPU only, no libcurl, no OpenSSL, no web UI (the UI step would
# otherwise download prebuilt assets); -j2 under nice, as the team's machines have two cores.
set -euo pipefail

VENV=${1:-.venv}
PYTHON="$VENV/bin/python"
VERSION=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')
DEST="$VENV/llama-server"
STAMP="$DEST/.built-$VERSION"
if [[ -x "$DEST/bin/llama-server" && -f "$STAMP" ]]; then
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/llama-server-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
start=$(date +%s)

# pip's own cache answers this when the sdist was fetched before (the venv was built from it)
"$PYTHON" -m pip download -q "llama-cpp-python==$VERSION" --no-deps --no-binary :all: -d "$WORK"
tar -xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$WORK"
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"

cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=ON -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >"$WORK/configure.log" 2>&1 \
    || { cat "$WORK/configure.log" >&2; exit 1; }
nice -n 10 cmake --build "$WORK/build" --target llama-server -j2 >"$WORK/build.log" 2>&1 \
    || { tail -50 "$WORK/build.log" >&2; exit 1; }

mkdir -p "$DEST/bin"
install -m 755 "$WORK/build/bin/llama-server" "$DEST/bin/llama-server.tmp"
mv "$DEST/bin/llama-server.tmp" "$DEST/bin/llama-server"  # never a half-copied binary under the real name
rm -f "$DEST"/.built-*
echo "llama-cpp-python $VERSION, built in $(( $(date +%s) - start )) s" >"$STAMP"
cat "$STAMP"
