#!/usr/bin/env bash
# GPU speed check of issue 11, in one call and under 10 minutes on one H100/H200:
#   bash benchmarks/gpu_check.sh [--out DIR]     # from the repository root
#   bash benchmarks/gpu_check.sh --dry-run       # the same parts at toy sizes on the CPU
# What it measures and prints: see benchmarks/gpu_check.py.
#
# Python: $PYTHON if set, else the repo's .venv, else python3 on PATH. It needs torch (with CUDA)
# and the package's few pure-Python dependencies; whatever is missing is installed from PyPI
# with the repo's pins (requirements/lock.txt) into the user site, which needs network access.
# A device machine without network therefore needs a Python that already has torch,
# torchvision, numpy, pyyaml, jsonschema, pandas and tqdm (the usual CUDA images do, but jsonschema).
# The package runs from this checkout (PYTHONPATH), so nothing is installed for ddpnas itself.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "gpu_check: $PY has no torch; set PYTHON to an interpreter with torch (CUDA build)" >&2
  exit 2
fi

missing=$("$PY" - <<'EOF'
import importlib.util
modules = {"numpy": "numpy", "yaml": "pyyaml", "jsonschema": "jsonschema", "pandas": "pandas",
           "tqdm": "tqdm", "torchvision": "torchvision", "PIL": "pillow"}
print(" ".join(pkg for mod, pkg in modules.items() if importlib.util.find_spec(mod) is None))
EOF
)
if [[ -n "$missing" ]]; then
  echo "gpu_check: installing missing packages: $missing" >&2
  # pins for what is missing only; torch itself is never reinstalled
  if ! "$PY" -m pip install --quiet --user -c requirements/lock.txt $missing; then
    echo "gpu_check: could not install $missing (no network?); provide them and rerun" >&2
    exit 2
  fi
fi

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" benchmarks/gpu_check.py "$@"
