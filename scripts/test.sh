#!/usr/bin/env bash
# Every test: the Rust workspace's, then the Python package's (built from
# this checkout into a virtual environment under target/, type-checked with
# mypy --strict and its stubs held to the extension module by stubtest).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-features
venv="${STAGEPROF_VENV:-target/python-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q ".[test]"
"$venv/bin/python" -m mypy
"$venv/bin/python" -m mypy.stubtest stageprof._native
cd python/tests
"$venv/bin/python" -m pytest -q
