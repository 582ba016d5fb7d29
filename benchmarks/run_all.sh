#!/usr/bin/env bash
# Run the performance benchmarks P1, P3, P4 (see benchmarks/README.md).
#   benchmarks/run_all.sh          quick sizes (smoke run, ~1 min on 2 vCPU; P1 ratios not meaningful)
#   FULL=1 benchmarks/run_all.sh   full sizes (~15 min on an idle 2 vCPU box, much longer under load)
# Extra arguments (e.g. --threads 2) are passed to every script. The exit status is non-zero only
# if a script fails; a MISS against a target is reported, not treated as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=3
mode=(--quick)
[[ ${FULL:-0} == 1 ]] && mode=()
results=()
status=0
for script in p1_patch_serving p3_input_pipeline p4_map_prediction ml_byol_query; do
    echo "== $script ${mode[*]} $*"
    # TensorFlow's C++ start-up chatter goes to stderr; drop it, keep real errors visible
    if ! out=$("$PY" "benchmarks/$script.py" "${mode[@]}" "$@" \
        2> >(grep -v -e 'cuda_dnn' -e 'cuda_blas' -e 'absl::InitializeLog' >&2)); then
        status=1
        results+=("FAILED $script")
    fi
    echo "$out"
    mapfile -t lines < <(grep '^RESULT ' <<<"$out")
    results+=("${lines[@]}")
    echo
done
echo "== summary ($([[ ${FULL:-0} == 1 ]] && echo full || echo quick) sizes)"
printf '%s\n' "${results[@]}"
exit $status
