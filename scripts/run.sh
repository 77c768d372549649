#!/usr/bin/env bash
# The main job: installs what it needs, builds, then generates answers for the prompts in
# data/prompts.txt with the default model (SmolLM2-135M-Instruct), all in one batch.
# Extra arguments go to `specoffload generate` (e.g. -n 64 --temp 0 --json).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"
bash "$repo/scripts/build.sh" >/dev/null
exec "$repo/build/apps/specoffload" generate -m default -f "$repo/data/prompts.txt" --chat "$@"
