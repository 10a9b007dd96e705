#!/usr/bin/env bash
# The README's main job: installs everything, builds, and fine-tunes a built-in
# tiny GPT-2-shaped model (random init, the real GPT-2 tokenizer) on the built-in
# sentiment task (examples/sentiment, MeZO's classification over label words)
# with MeZO-SGD; eval loss falls and accuracy rises. Outputs in demo/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/fetch-tokenizer-data.sh
bash scripts/build.sh
out=${ZOTUNE_DEMO_DIR:-demo}
tok=${ZOTUNE_TOKENIZER_DATA:-.cache/tokenizer-data}/gpt2
mkdir -p "$out"
if [ ! -f "$out/tiny-gpt2/config.json" ]; then
  build/zotune init --arch gpt2 --preset tiny --tokenizer "$tok" --seed 1 --out "$out/tiny-gpt2"
fi
rm -rf "$out/run"
build/zotune train --model "$out/tiny-gpt2" \
  --data examples/sentiment/train.jsonl --eval examples/sentiment/eval.jsonl \
  --out "$out/run" --steps 3000 --batch-size 16 --lr 4e-4 --schedule linear --eps 1e-3 --seed 0 \
  --max-length 32 --eval-every 500
echo
echo "Evaluations (metrics in $out/run/metrics.jsonl, curves in $out/run/loss.svg and accuracy.svg):"
grep '"type":"eval"' "$out/run/metrics.jsonl" |
  python3 -c 'import json,sys
for l in sys.stdin:
    r = json.loads(l)
    print("  step %5d  eval loss %.4f  accuracy %.1f%%" % (r["step"], r["loss"], 100 * r["accuracy"]))'
echo
echo "The fine-tuned model is a Hugging Face checkpoint: $out/run (config.json, model.safetensors, tokenizer)."
build/zotune inspect --model "$out/run"
