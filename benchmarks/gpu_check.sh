#!/usr/bin/env bash
# The GPU check on a lent GPU machine, which has no network: installs medbench from this working tree plus
# the few wheels its image lacks (fetched beforehand by `make gpu-wheels` into .whl/gpu, carried along),
# then runs benchmarks/gpu_check.py with the arguments given. Run it from the repository root:
#   bash benchmarks/gpu_check.sh            # results in $OUT (or ./gpu-check-out)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
site="${MEDBENCH_GPU_SITE:-/tmp/medbench-site}"
shopt -s nullglob
wheels=(.whl/gpu/*.whl)
if [ ${#wheels[@]} -eq 0 ]; then
  echo "error: no wheels in .whl/gpu. Run 'make gpu-wheels' where pip reaches PyPI, and carry .whl along." >&2
  exit 2
fi
# The wheels first (setuptools among them), so that building medbench from the tree needs nothing else.
"$python" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" "${wheels[@]}"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
"$python" -m pip install -q --no-index --no-deps --no-compile --no-build-isolation --upgrade --target "$site" .
exec "$python" benchmarks/gpu_check.py "$@"
