#!/usr/bin/env bash
# The README's main-job command: set up (idempotent), then run the pipeline on the
# embedded defaults. Extra arguments go to `hearmask pipeline` (e.g. --out DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/hearmask pipeline "$@"
