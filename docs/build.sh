#!/usr/bin/env bash
# Build the HTML documentation with warnings as errors. The gallery examples
# run during the build, so a broken example, a broken reference or a numpydoc
# warning fails it. Needs the "docs" extra: python -m pip install -e ".[docs]".
# Usage: docs/build.sh [extra sphinx-build options]; output in docs/_build/html.
set -euo pipefail
cd "$(dirname "$0")"
export MPLBACKEND=Agg
# The examples are small: one BLAS / OpenMP thread each is fastest, and on a
# busy or shared machine more threads make them many times slower.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
export MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
python -m sphinx -W --keep-going -n -b html . _build/html "$@"
