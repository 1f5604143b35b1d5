#!/usr/bin/env bash
# llama.cpp's own converter (convert_hf_to_gguf.py, conversion/, gguf-py/), from the llama.cpp source vendored in
# the llama-cpp-python sdist the venv has installed (0c1e57098 for 0.3.36), for tests/test_converter_truth.py.
#
#   tools/fetch_llama_converter.sh [VENV]      (default .venv)
#
# Result: VENV/llama-converter/{convert_hf_to_gguf.py,conversion,gguf-py} and the stamp
# VENV/llama-converter/.stamp-<version>; a second run with the same version does nothing.
set -euo pipefail

VENV=${1:-.venv}
PYTHON="$VENV/bin/python"
VERSION=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')
DEST="$VENV/llama-converter"
STAMP="$DEST/.stamp-$VERSION"
if [[ -f "$STAMP" ]]; then
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/llama-converter.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# pip's own cache answers this when the sdist was fetched before (the venv and llama-server were built from it)
"$PYTHON" -m pip download -q "llama-cpp-python==$VERSION" --no-deps --no-binary :all: -d "$WORK"
ROOT="llama_cpp_python-$VERSION/vendor/llama.cpp"
tar -xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$WORK" \
    "$ROOT/convert_hf_to_gguf.py" "$ROOT/conversion" "$ROOT/gguf-py"
rm -rf "$DEST.tmp"
mkdir -p "$DEST.tmp"
cp -r "$WORK/$ROOT/convert_hf_to_gguf.py" "$WORK/$ROOT/conversion" "$WORK/$ROOT/gguf-py" "$DEST.tmp/"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"  # never a half-copied tree under the real name
echo "llama-cpp-python $VERSION" >"$STAMP"
cat "$STAMP"
