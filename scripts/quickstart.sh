#!/usr/bin/env bash
# The README's main job: installs, builds, and runs zotune on a built-in default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
out=${ZOTUNE_DEMO_DIR:-demo}
mkdir -p "$out"
if [ ! -f "$out/tiny-gpt2/config.json" ]; then
  build/zotune init --arch gpt2 --preset tiny --seed 1 --out "$out/tiny-gpt2"
fi
build/zotune inspect --model "$out/tiny-gpt2"
build/zotune generate --model "$out/tiny-gpt2" --input-ids 1,2,3,4 --max-new-tokens 16
