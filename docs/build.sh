#!/usr/bin/env bash
# Build the HTML documentation with warnings as errors. The gallery examples
# run during the build, so a broken example, a broken reference or a numpydoc
# warning fails it. Needs the "docs" extra: python -m pip install -e ".[docs]".
# Usage: docs/build.sh [extra sphinx-build options]; output in docs/_build/html.
set -euo pipefail
cd "$(dirname "$0")"
export MPLBACKEND=Agg
python -m sphinx -W --keep-going -n -b html . _build/html "$@"
