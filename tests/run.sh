#!/usr/bin/env bash
# The full suite, as `make test` and CI run it (the Makefile has put .venv/bin on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest tests "$@"
