#!/usr/bin/env bash
# The full suite, as `make test` and CI run it (the Makefile has put .venv/bin on PATH).
# Starts the project's local SLURM cluster (root only), always stops it again by pid, even
# when tests fail, and makes the SLURM tests mandatory when the cluster is up.
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$SECONDS
# RSTRANSFER_NO_SKIP=1 (.ci/run): every pytest skip is a failure (tests/conftest.py); the SLURM
# and browser tests need root here, so refuse early instead of failing them one by one
if [ "${RSTRANSFER_NO_SKIP:-0}" = 1 ] && { [ "$(id -u)" != 0 ] || [ "${RSTRANSFER_NO_SLURM:-0}" = 1 ]; }; then
  echo "tests/run.sh: RSTRANSFER_NO_SKIP=1 needs root and the local SLURM cluster (RSTRANSFER_NO_SLURM unset)" >&2
  exit 1
fi
# headless Chromium for tests/test_browser.py: installed as root, then mandatory (no skip)
if [ "$(id -u)" = 0 ]; then
  command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
    || { echo "tests/run.sh: apt-get install chromium failed" >&2; exit 1; }
  export RSTRANSFER_BROWSER_REQUIRED=1
else
  command -v chromium >/dev/null || echo "tests/run.sh: not root and no chromium: browser tests will be skipped" >&2
fi
if [ "$(id -u)" = 0 ] && [ "${RSTRANSFER_NO_SLURM:-0}" != 1 ]; then
  trap 'bash tests/slurm/stop.sh >/dev/null 2>&1 || true' EXIT
  bash tests/slurm/start.sh || { echo "tests/run.sh: local SLURM cluster failed to start" >&2; exit 1; }
  export RSTRANSFER_SLURM=1 RSTRANSFER_SLURM_REQUIRED=1
else
  echo "tests/run.sh: not root (or RSTRANSFER_NO_SLURM=1): SLURM tests will be skipped" >&2
fi
python -m pytest tests --durations=15 "$@"
rc=$?
echo "tests/run.sh: pytest exit $rc after $((SECONDS - T0)) s"
exit $rc
