#!/usr/bin/env bash
# Every test: the Rust workspace's, then the Python package's (built from
# this checkout into a virtual environment under target/, type-checked with
# mypy --strict and its stubs held to the extension module by stubtest).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-features
venv="${STAGEPROF_VENV:-$PWD/target/python-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q ".[test]"
# torch for the demo's and the torch integration's tests: PyPI's wheel (the
# CPU-only index is not reachable from CI); about 70 s and 5.5 GB the first time.
"$venv/bin/python" -c "import torch" 2>/dev/null || "$venv/bin/python" -m pip install -q torch
"$venv/bin/python" -m mypy
"$venv/bin/python" -m mypy.stubtest stageprof._native
cd python/tests
"$venv/bin/python" -m pytest -q --junitxml="$OLDPWD/target/pytest.xml"
