#!/usr/bin/env node
// Reference vectors for zotune's tokenizer tests, made by Hugging Face's
// JavaScript tokenizers and cross-checked against independent implementations.
//
// Setup (once; nothing is installed into the repository):
//   scripts/fetch-tokenizer-data.sh                  # vocabularies + texts
//   mkdir -p /tmp/tokjs && cd /tmp/tokjs && npm init -y >/dev/null && npm install --ignore-scripts \
//     @huggingface/tokenizers@0.2.0 @huggingface/transformers@4.3.1 gpt-3-encoder@1.1.4 \
//     js-tiktoken@1.0.21 llama-tokenizer-js@1.2.2 llama3-tokenizer-js@1.2.0
// Run:
//   TOK_JS=/tmp/tokjs node tools/tokenizer/make_vectors.mjs [DATA_DIR]
//     DATA_DIR defaults to $ZOTUNE_TOKENIZER_DATA, else <repo>/.cache/tokenizer-data
//   -> tests/data/tokenizers/<family>/vectors.jsonl, tests/data/tokenizers/corpus_hashes.json
//      and tests/data/tokenizers/crosscheck.json
//
// Each line: {"text", "ids", "ids_hf", "decoded", "decoded_skip"}
//   ids          HF encode(text, add_special_tokens=false); special tokens in text are split out
//   ids_hf       HF encode(text) with add_special_tokens=true (what tokenizer(text).input_ids gives)
//   decoded      HF decode(ids), no special-token skipping, no clean_up_tokenization_spaces
//   decoded_skip HF decode(ids_hf, skip_special_tokens=true)
// The reference is @huggingface/tokenizers (HF's own port of the Rust library) on the
// tokenizer.json of each family. crosscheck.json records, per implementation, how many
// strings it reproduces and every disagreement.
//
// corpus_hashes.json: for the first 1 MB of text/english.txt and all of text/mixed.txt (2.1 MB),
// the number of ids and the sha256 of the ids (int32 little-endian) from encode(text,
// add_special_tokens=false), and the sha256 of decode(ids) (UTF-8).
//
// Known difference kept out of the strings: JavaScript's \s matches U+FEFF and not
// U+0085, Oniguruma (HF Rust) the reverse; zotune follows Oniguruma.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const DATA = path.resolve(process.argv[2] || process.env.ZOTUNE_TOKENIZER_DATA || path.join(REPO, '.cache', 'tokenizer-data'));
const OUT = path.join(REPO, 'tests', 'data', 'tokenizers');
const TOK_JS = process.env.TOK_JS || '/tmp/tokjs';
const req = createRequire(path.join(TOK_JS, 'package.json'));
const imp = (spec) => import(pathToFileURL(req.resolve(spec)).href);
const readJSON = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));
const version = (name) => {
  let dir = path.dirname(req.resolve(name));
  while (!(fs.existsSync(path.join(dir, 'package.json')) && readJSON(path.join(dir, 'package.json')).name === name)) dir = path.dirname(dir);
  return `${name}@${readJSON(path.join(dir, 'package.json')).version}`;
};

// ------------------------------------------------------------------ strings
// Deterministic PRNG (mulberry32) so that the vectors are reproducible.
function rng(seed) {
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<s>', '</s>', '<unk>', '<|begin_of_text|>',
  '<|end_of_text|>', '<|eot_id|>', '<|start_header_id|>', '<|end_header_id|>', '<think>', '</think>', '<tool_call>',
  '<|fim_prefix|>', '<|fim_middle|>', '<|fim_suffix|>', '<|vision_pad|>', '<|reserved_special_token_5|>'];

function basicStrings() {
  const para = "In 1843, Ada Lovelace published her notes on Charles Babbage's Analytical Engine; they included what " +
    "many consider the first algorithm intended for a machine. She wrote: \"The Analytical Engine weaves " +
    "algebraical patterns just as the Jacquard-loom weaves flowers and leaves.\" Today we don't think twice -- " +
    "our phones run 1,000,000,000+ instructions per second, and a $35 computer out-calculates every machine " +
    "built before 1960.\n\n\tNumbers: 3.14, 3,14, 2024-06-01, 06/01/2024; F(n) = F(n-1) + F(n-2) for n >= 2.   ";
  return [
    '', 'Hello world', 'Hello, world!', 'The quick brown fox jumps over the lazy dog.', 'a', 'A', ' ', '   ',
    ' leading space', '  two leading spaces', 'trailing space ', 'trailing spaces   ', '   Hello   ',
    'multiple   spaces   between    words', 'line1\nline2', 'line1\n\nline3\n', '\n', '\n\n\n', '\r\n', ' \n ',
    'tab\tseparated\tvalues', '\t\tindented with tabs', 'windows\r\nline endings\r\n', 'mixed \t \n whitespace \n\t end',
    '0123456789', '1234567890123456789012345678901234567890', 'Pi is 3.14159265358979, e is 2.71828.',
    'Year 2024: 1,000,000 dollars, 42nd place, 7.5% off', '!!!???...,,,;;;:::', 'Hello!!! What?!?! Wow...',
    '(parentheses) [brackets] {braces} <angles>', '@#$%^&*()_+-=~`|\\/', '-----=====*****',
    "don't", "I'LL be there, you'RE right, it'S fine", "we'll they've she'd I'm he's", "'quoted' \"double quoted\"",
    "rock 'n' roll", "it'ſ the long s", "DON'T SHOUT", "'s 't 're 've 'm 'll 'd", "'''", "a'b'c",
    'café naïve résumé', 'Ångström Ølse Ÿ ß ẞ', 'Crème brûlée à la française', 'e\u0301 decomposed vs \u00e9 precomposed',
    'A\u030a and \u212b (angstrom sign) and \u00c5', '\u1100\u1161\u11a8 jamo vs \uac01', 'ﬁ ligature, ① circled, ２ fullwidth',
    '中文测试', '你好，世界！', '我爱北京天安门。', '日本語のテキストです。', 'カタカナとひらがな、漢字。', '한국어 텍스트입니다',
    'مرحبا بالعالم', 'שלום עולם', 'Привет, мир!', 'Γειά σου Κόσμε', 'नमस्ते दुनिया', 'สวัสดีชาวโลก', 'Xin chào thế giới',
    '١٢٣ ٤٥٦ digits', '०१२३ devanagari digits', '½ ¾ ² ³ Ⅻ roman', '\u00a0non-breaking\u00a0spaces\u00a0', 'ideographic\u3000space',
    'line\u2028separator', 'para\u2029separator', 'em\u2003space and thin\u2009space', 'zero\u200bwidth\u200cjoiner\u200d',
    '😀', 'Hello 👋 world 🌍!', '👨\u200d👩\u200d👧\u200d👦', '👩🏽\u200d💻 coding', '🏳️\u200d🌈 flag', '🇯🇵🇺🇸🇩🇪',
    '1️⃣ 2️⃣ #️⃣', '❤️ ♥ ☺️ ☺', '🧑🏿\u200d🤝\u200d🧑🏻', 'emoji😀without😀spaces', '👍🏻👍🏼👍🏽👍🏾👍🏿',
    para, 'HELLO WORLD IN CAPS', 'camelCaseIdentifier snake_case_identifier', 'x', '\u2581', '\u2581\u2581 metaspace chars',
    'Ġ Ċ ĉ byte-level lookalikes', '<0x41> byte token text', '\\u0041 \\n escapes', 'tab\\t', '\x7f\x01 control',
  ];
}

function codeStrings() {
  return [
    '#include <cstdio>\nint main(int argc, char** argv) {\n  std::printf("%d\\n", argc);\n  return 0;\n}\n',
    'def fib(n):\n    """Return the n-th Fibonacci number."""\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n',
    'const f = async (x) => { await sleep(10); return x?.y ?? [1, 2, 3].map((v) => v ** 2); };',
    '{"key": "value", "list": [1, 2.5, -3e10, true, null], "nested": {"a": {"b": "c"}}}',
    'SELECT id, name FROM users WHERE age >= 18 AND name LIKE \'%smith%\' ORDER BY id DESC;',
    'for i in $(seq 1 10); do echo "$i" | sed -e \'s/1/one/g\' >> out.txt; done',
    '<div class="main"><p>Paragraph &amp; entity &lt;tag&gt;</p></div>',
    'fn main() -> Result<(), Box<dyn Error>> {\n\tlet v: Vec<u8> = vec![0; 1024];\n\tOk(())\n}',
    '    indented four\n        indented eight\n\t\ttabs\n',
    'x=1;y=2;z=x+y*3-4/5%6^7&8|9', '// comment\n/* block\n   comment */', 'a_b-c.d/e\\f:g@h#i',
    'https://example.com/path?query=1&other=two#fragment', 'user@example.org', '0x1F 0b1010 1e-9 1_000_000',
    '\\begin{equation} E = mc^2 \\end{equation}', '| col1 | col2 |\n|------|------|\n| a    | b    |',
  ];
}

function longRuns() {
  return [
    'a'.repeat(1000), ' '.repeat(500), '\n'.repeat(300), '!'.repeat(400), '0'.repeat(999), '😀'.repeat(200),
    '中'.repeat(300), '\t'.repeat(100), 'ab'.repeat(500), '\u2581'.repeat(50), ' a'.repeat(300), 'é'.repeat(300),
    '-'.repeat(256), '=' .repeat(257), 'x'.repeat(255) + ' ' + 'y'.repeat(257), ' \n'.repeat(200), '..'.repeat(300),
    'Hello world! '.repeat(80), '1 '.repeat(200), '\r\n'.repeat(150),
  ];
}

function specialStrings() {
  const out = [
    'Hello <|endoftext|> world', 'text<|endoftext|>text', '<|endoftext|>', '<|endoftext|><|endoftext|>',
    '<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n', 'before <|im_start|> after', '<|im_start', 'im_start|>',
    '<s>Hello</s>', 'a <s> b </s> c', '<unk>', '<s><s></s>', ' <s> ', '<s>\n', 'x</s>y',
    '<think>\nreasoning\n</think>\n\nanswer', '<tool_call>{"name": "f"}</tool_call>',
    '<|fim_prefix|>def f():<|fim_suffix|>\n    return 1<|fim_middle|>',
    '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>',
    '<|reserved_special_token_5|> and <|reserved_special_token_999|>', '<|vision_pad|><|vision_pad|>',
    '<<|endoftext|>>', '<|<|im_end|>|>', 'Ä<|im_end|>Ö',
  ];
  const r = rng(7);
  for (let i = 0; i < 30; i++) {
    let s = '';
    const n = 1 + Math.floor(r() * 6);
    for (let k = 0; k < n; k++) {
      s += SPECIALS[Math.floor(r() * SPECIALS.length)];
      s += [' ', '', '\n', 'word', ' text ', '中文', '😀'][Math.floor(r() * 7)];
    }
    out.push(s);
  }
  return out;
}

// Random strings over pools of long-assigned characters (no Unicode-version
// drift between PCRE2, Oniguruma and V8), avoiding U+0085/U+FEFF (see top).
function randomStrings(n) {
  const pools = [
    ' abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ', '0123456789', " .,;:!?'\"()[]{}-_/\\@#$%^&*+=<>|~`",
    ' \t\n\r\u00a0\u3000\u2009', 'éèêëàâäôöùûüçñßøåæœÉÀÇÑØÅ', 'абвгдежзийклмнопрстуфхцчшщыэюяАБВ', 'αβγδεζηθικλμνξοπρστυφχψωΑΒΓ',
    '的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年', 'あいうえおかきくけこアイウエオカキクケコ', '가나다라마바사아자차카타파하',
    'ابتثجحخدذرزسشصضطظعغفقكلمنهوي', 'אבגדהוזחטיכלמנסעפצקרשת', 'कखगघचछजझटठडढणतथदधनपफबभमयरलवशसह्ािीुूेैोौं',
    '\u0300\u0301\u0302\u0308\u0327', '😀😂🤣😍👍🙏🔥🎉❤️✨🚀🌍', '\u200d\u200c\u200b\ufe0f', '①②③½¾²³Ⅻ٣४',
  ];
  const r = rng(12345);
  const out = [];
  for (let i = 0; i < n; i++) {
    const len = 1 + Math.floor(r() * (i % 10 === 0 ? 300 : 60));
    const mix = 1 + Math.floor(r() * 4);
    const chosen = Array.from({ length: mix }, () => [...pools[Math.floor(r() * pools.length)]]);
    let s = '';
    for (let k = 0; k < len; k++) { const p = chosen[Math.floor(r() * chosen.length)]; s += p[Math.floor(r() * p.length)]; }
    out.push(s);
  }
  return out;
}

function corpusStrings() {
  const out = [];
  const mixed = fs.readFileSync(path.join(DATA, 'text', 'mixed.txt'), 'utf8').split('\n\n');
  // One paragraph from every 4th language, and a few whole-language blocks.
  mixed.forEach((block, i) => {
    if (i % 4 !== 0) return;
    const lines = block.split('\n').filter((l) => l.trim());
    if (lines.length > 2) out.push(lines[2].slice(0, 600));
    if (i % 80 === 0) out.push(block.slice(0, 3000));
  });
  const english = fs.readFileSync(path.join(DATA, 'text', 'english.txt'), 'utf8').split('\n\n');
  const r = rng(99);
  for (let i = 0; i < 40; i++) out.push(english[Math.floor(r() * english.length)]);
  return out;
}

const bad = /[\u0085\ufeff\u001c-\u001f\u180e]/;
const STRINGS = [...new Set([...basicStrings(), ...codeStrings(), ...longRuns(), ...specialStrings(), ...randomStrings(250), ...corpusStrings()])]
  .filter((s) => !bad.test(s));

// ------------------------------------------------------------------ implementations
const hfm = await imp('@huggingface/tokenizers');
const HFTokenizer = hfm.Tokenizer ?? hfm.default.Tokenizer;
const t4m = await imp('@huggingface/transformers');
const T4 = t4m.AutoTokenizer ? t4m : t4m.default;
T4.env.allowRemoteModels = false;
T4.env.allowLocalModels = true;
T4.env.localModelPath = DATA + path.sep;
const g3 = req('gpt-3-encoder');
const { getEncoding } = req('js-tiktoken');
const tiktokenGpt2 = getEncoding('gpt2');
const llama2js = (await imp('llama-tokenizer-js')).default;
const llama3js = (await imp('llama3-tokenizer-js')).default;

const hasSpecial = (s, list) => list.some((t) => s.includes(t));
const FAMILIES = {
  gpt2: {
    others: [
      { name: version('js-tiktoken') + ' gpt2, allowedSpecial=all', field: 'ids', enc: (s) => tiktokenGpt2.encode(s, 'all') },
      { name: version('gpt-3-encoder') + ' (strings without <|endoftext|>)', field: 'ids', skip: (s) => s.includes('<|endoftext|>'), enc: (s) => g3.encode(s) },
    ],
  },
  qwen3: { others: [] },
  llama2: {
    others: [
      // llama-tokenizer-js parses no special tokens and encodes "" as [].
      { name: version('llama-tokenizer-js') + ' (strings without <s> </s> <unk>)', field: 'ids_hf', skip: (s) => s === '' || hasSpecial(s, ['<s>', '</s>', '<unk>']), enc: (s) => llama2js.encode(s) },
    ],
  },
  llama3: {
    others: [
      { name: version('llama3-tokenizer-js') + ' (no BOS/EOS)', field: 'ids', enc: (s) => llama3js.encode(s, { bos: false, eos: false }) },
    ],
  },
};

const CORPUS = {
  english: fs.readFileSync(path.join(DATA, 'text', 'english.txt')).subarray(0, 1000000).toString('utf8'),
  mixed: fs.readFileSync(path.join(DATA, 'text', 'mixed.txt'), 'utf8'),
};
const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
const corpusHashes = {};

const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const short = (s) => JSON.stringify(s.length > 60 ? s.slice(0, 60) + '…' : s);
const report = { generated_by: 'tools/tokenizer/make_vectors.mjs', node: process.version, reference: version('@huggingface/tokenizers'), strings: STRINGS.length, families: {} };
for (const [name, fam] of Object.entries(FAMILIES)) {
  const dir = path.join(DATA, name);
  const ref = new HFTokenizer(readJSON(path.join(dir, 'tokenizer.json')), readJSON(path.join(dir, 'tokenizer_config.json')));
  const t4 = await T4.AutoTokenizer.from_pretrained(name, { local_files_only: true });
  const dec = (ids, skip) => (ids.length ? ref.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false }) : '');
  const rows = STRINGS.map((text) => {
    const ids = Array.from(ref.encode(text, { add_special_tokens: false }).ids, Number);
    const ids_hf = Array.from(ref.encode(text, { add_special_tokens: true }).ids, Number);
    return { text, ids, ids_hf, decoded: dec(ids, false), decoded_skip: dec(ids_hf, true) };
  });
  const others = [{ name: version('@huggingface/transformers') + ' AutoTokenizer', field: 'ids_hf', enc: (s) => Array.from(t4.encode(s), Number) }, ...fam.others];
  const checks = others.map((o) => {
    const c = { impl: o.name, compared_to: o.field, agree: 0, skipped: 0, disagree: [] };
    for (const r of rows) {
      if (o.skip && o.skip(r.text)) { c.skipped++; continue; }
      let got;
      try { got = Array.from(o.enc(r.text), Number); } catch (e) { got = 'ERROR ' + e.message; }
      if (Array.isArray(got) && same(got, r[o.field])) c.agree++;
      else c.disagree.push({ text: short(r.text), want: r[o.field].slice(0, 30), got: Array.isArray(got) ? got.slice(0, 30) : got });
    }
    return c;
  });
  corpusHashes[name] = {};
  for (const [cname, text] of Object.entries(CORPUS)) {
    const ids = Int32Array.from(ref.encode(text, { add_special_tokens: false }).ids, Number);
    const decoded = dec(Array.from(ids), false);
    corpusHashes[name][cname] = {
      bytes: Buffer.byteLength(text), ids: ids.length, ids_sha256: sha256(Buffer.from(ids.buffer)),
      decoded_sha256: sha256(Buffer.from(decoded, 'utf8')), roundtrip: decoded === text,
    };
  }
  fs.mkdirSync(path.join(OUT, name), { recursive: true });
  fs.writeFileSync(path.join(OUT, name, 'vectors.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  report.families[name] = { roundtrip_failures: rows.filter((r) => r.decoded !== r.text).map((r) => short(r.text)), crosschecks: checks };
  console.log(`${name}: ${rows.length} strings`);
  for (const c of checks) console.log(`   ${c.agree}/${rows.length - c.skipped} agree (${c.skipped} skipped)  ${c.impl} vs ${c.compared_to}`);
}
fs.writeFileSync(path.join(OUT, 'corpus_hashes.json'), JSON.stringify(corpusHashes, null, 1) + '\n');
fs.writeFileSync(path.join(OUT, 'crosscheck.json'), JSON.stringify(report, null, 1) + '\n');
