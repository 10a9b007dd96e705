#!/usr/bin/python3
"""Writes tests/golden/<case>/ from the independent PyTorch references in
tools/hf_reference.py. Deterministic: running it twice gives identical bytes.

    /usr/bin/python3 tools/make_golden.py [--out DIR]

(/usr/bin/python3 because Debian's python3-torch lives there.) Every case is
checked after its weights are written; a failed check stops the run with an error.
"""

import argparse
import hashlib
import json
import math
import os
import sys

import torch

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as ref  # noqa: E402
import safetensors_lite  # noqa: E402

SEQ_LEN = 14
# (real tokens, side padded) per batch row: left-padded, right-padded, full.
BATCH_LAYOUT = [(10, "left"), (11, "right"), (SEQ_LEN, "none")]
PROMPT_LEN = 6
NEW_TOKENS = 8
# A greedy step whose best two logits are closer than this could flip under
# the tolerated logit error, so such prompts are skipped.
MIN_GREEDY_MARGIN = 0.05
MIN_DISTINCT_GENERATED = 4
BATCH_INVARIANCE_TOL = 1e-5  # relative to max |logit| of the sequence
SIZE_BUDGET = 4 * 1024 * 1024

# --- configs -------------------------------------------------------------------


def gpt2_config(vocab, hidden, heads, inner=None, dtype="float32", eps=1e-5):
    return {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": vocab - 1,
        "embd_pdrop": 0.1,
        "eos_token_id": vocab - 1,
        "initializer_range": 0.02,
        "layer_norm_epsilon": eps,
        "model_type": "gpt2",
        "n_ctx": 64,
        "n_embd": hidden,
        "n_head": heads,
        "n_inner": inner,
        "n_layer": 2,
        "n_positions": 64,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "torch_dtype": dtype,
        "transformers_version": "4.44.2",
        "use_cache": True,
        "vocab_size": vocab,
    }


def opt_config(vocab, hidden, heads, ffn, proj_dim=None, pre_norm=True, bias=True, affine=True, dtype="float32"):
    return {
        "_remove_final_layer_norm": False,
        "activation_dropout": 0.0,
        "activation_function": "relu",
        "architectures": ["OPTForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 2,
        "do_layer_norm_before": pre_norm,
        "dropout": 0.1,
        "enable_bias": bias,
        "eos_token_id": 2,
        "ffn_dim": ffn,
        "hidden_size": hidden,
        "init_std": 0.02,
        "layer_norm_elementwise_affine": affine,
        "layerdrop": 0.0,
        "max_position_embeddings": 64,
        "model_type": "opt",
        "num_attention_heads": heads,
        "num_hidden_layers": 2,
        "pad_token_id": 1,
        "torch_dtype": dtype,
        "transformers_version": "4.44.2",
        "use_cache": True,
        "vocab_size": vocab,
        "word_embed_proj_dim": proj_dim or hidden,
    }


def llama_config(vocab, hidden, heads, kv_heads, inter, tied, theta=10000.0, rope_scaling=None, dtype="float32"):
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": hidden // heads,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "max_position_embeddings": 512,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": heads,
        "num_hidden_layers": 2,
        "num_key_value_heads": kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": rope_scaling,
        "rope_theta": theta,
        "tie_word_embeddings": tied,
        "torch_dtype": dtype,
        "transformers_version": "4.44.2",
        "use_cache": True,
        "vocab_size": vocab,
    }


def qwen3_config(vocab, hidden, heads, kv_heads, head_dim, inter, tied, dtype="float32"):
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": vocab - 2,
        "eos_token_id": vocab - 1,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "max_position_embeddings": 512,
        "max_window_layers": 2,
        "model_type": "qwen3",
        "num_attention_heads": heads,
        "num_hidden_layers": 2,
        "num_key_value_heads": kv_heads,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": tied,
        "torch_dtype": dtype,
        "transformers_version": "4.51.0",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab,
    }


# Small original_max_position_embeddings so that all three llama3 bands occur
# at head_dim 16 and the remap visibly changes angles within 14 positions.
LLAMA3_SCALING = {
    "factor": 8.0,
    "high_freq_factor": 4.0,
    "low_freq_factor": 1.0,
    "original_max_position_embeddings": 64,
    "rope_type": "llama3",
}

CASES = {
    "gpt2": gpt2_config(151, 48, 4),
    "opt": opt_config(163, 48, 4, 96),
    "opt_postln": opt_config(139, 32, 4, 80, pre_norm=False),
    "opt_proj": opt_config(157, 48, 4, 96, proj_dim=32),
    "opt_postln_proj": opt_config(149, 48, 4, 64, proj_dim=32, pre_norm=False),
    "opt_nobias_noaffine": opt_config(127, 32, 4, 64, bias=False, affine=False),
    "llama": llama_config(173, 48, 4, 2, 112, tied=False),
    "llama3_rope": llama_config(199, 64, 4, 1, 96, tied=True, theta=500000.0, rope_scaling=LLAMA3_SCALING),
    "qwen3": qwen3_config(187, 48, 4, 2, 16, 96, tied=True),
    "gpt2_bf16": gpt2_config(131, 32, 4, inner=80, dtype="bfloat16"),
    "opt_bf16": opt_config(143, 48, 4, 80, proj_dim=32, pre_norm=False, dtype="bfloat16"),
    "llama_bf16": llama_config(119, 32, 4, 2, 80, tied=False, dtype="bfloat16"),
    "qwen3_bf16": qwen3_config(167, 32, 4, 1, 16, 72, tied=False, dtype="bfloat16"),
}

# --- parameter tables ------------------------------------------------------------


def gpt2_params(c):
    C, V, P = c["n_embd"], c["vocab_size"], c["n_positions"]
    inner = c["n_inner"] or 4 * C
    params = [("transformer.wte.weight", [V, C]), ("transformer.wpe.weight", [P, C])]
    for i in range(c["n_layer"]):
        p = f"transformer.h.{i}."
        params += [
            (p + "ln_1.weight", [C]), (p + "ln_1.bias", [C]),
            (p + "attn.c_attn.weight", [C, 3 * C]), (p + "attn.c_attn.bias", [3 * C]),
            (p + "attn.c_proj.weight", [C, C]), (p + "attn.c_proj.bias", [C]),
            (p + "ln_2.weight", [C]), (p + "ln_2.bias", [C]),
            (p + "mlp.c_fc.weight", [C, inner]), (p + "mlp.c_fc.bias", [inner]),
            (p + "mlp.c_proj.weight", [inner, C]), (p + "mlp.c_proj.bias", [C]),
        ]
    return params + [("transformer.ln_f.weight", [C]), ("transformer.ln_f.bias", [C])]


def opt_params(c):
    C, V, F, E = c["hidden_size"], c["vocab_size"], c["ffn_dim"], c["word_embed_proj_dim"]
    bias, affine = c["enable_bias"], c["layer_norm_elementwise_affine"]
    d = "model.decoder."

    def norm(name):
        return [(name + ".weight", [C]), (name + ".bias", [C])] if affine else []

    def lin(name, out, inp):
        return [(name + ".weight", [out, inp])] + ([(name + ".bias", [out])] if bias else [])

    params = [(d + "embed_tokens.weight", [V, E]), (d + "embed_positions.weight", [c["max_position_embeddings"] + 2, C])]
    if E != C:
        params += [(d + "project_in.weight", [C, E]), (d + "project_out.weight", [E, C])]
    if c["do_layer_norm_before"]:
        params += norm(d + "final_layer_norm")
    for i in range(c["num_hidden_layers"]):
        p = f"{d}layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            params += lin(p + "self_attn." + proj, C, C)
        params += norm(p + "self_attn_layer_norm") + lin(p + "fc1", F, C) + lin(p + "fc2", C, F) + norm(p + "final_layer_norm")
    return params


def rope_decoder_params(c, qk_norm):
    C, V, I = c["hidden_size"], c["vocab_size"], c["intermediate_size"]
    D, H, K = c["head_dim"], c["num_attention_heads"], c["num_key_value_heads"]
    params = [("model.embed_tokens.weight", [V, C])]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        params += [
            (p + "input_layernorm.weight", [C]),
            (p + "self_attn.q_proj.weight", [H * D, C]),
            (p + "self_attn.k_proj.weight", [K * D, C]),
            (p + "self_attn.v_proj.weight", [K * D, C]),
            (p + "self_attn.o_proj.weight", [C, H * D]),
        ]
        if qk_norm:
            params += [(p + "self_attn.q_norm.weight", [D]), (p + "self_attn.k_norm.weight", [D])]
        params += [
            (p + "post_attention_layernorm.weight", [C]),
            (p + "mlp.gate_proj.weight", [I, C]),
            (p + "mlp.up_proj.weight", [I, C]),
            (p + "mlp.down_proj.weight", [C, I]),
        ]
    params.append(("model.norm.weight", [C]))
    if not c["tie_word_embeddings"]:
        params.append(("lm_head.weight", [V, C]))
    return params


PARAM_TABLES = {
    "GPT2LMHeadModel": gpt2_params,
    "OPTForCausalLM": opt_params,
    "LlamaForCausalLM": lambda c: rope_decoder_params(c, qk_norm=False),
    "Qwen3ForCausalLM": lambda c: rope_decoder_params(c, qk_norm=True),
}

# --- random weights and inputs -----------------------------------------------------


def case_seed(name):
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def init_tensor(name, shape, gen):
    """Scales chosen so that logits spread over a few units (large enough that
    a wrong op shows, small enough that softmaxes are not one-hot) and so that
    block outputs outweigh the token embedding: with tied heads a larger
    embedding makes greedy decoding echo the last token, whatever attention does."""
    noise = torch.randn(shape, generator=gen)
    if name.endswith(".bias"):
        return 0.05 * noise
    if len(shape) == 1:  # LayerNorm / RMSNorm scale
        return 1.0 + 0.15 * noise
    if "embed_positions" in name or "wpe" in name:
        return 0.1 * noise
    if "embed_tokens" in name or "wte" in name:
        return 0.15 * noise
    # GPT-2's Conv1D stores [in, out]; nn.Linear stores [out, in].
    fan_in = shape[0] if name.startswith("transformer.h.") else shape[1]
    return (1.5 / math.sqrt(fan_in)) * noise


def make_weights(config, gen):
    dtype = torch.bfloat16 if config["torch_dtype"] == "bfloat16" else torch.float32
    table = PARAM_TABLES[config["architectures"][0]](config)
    return {name: init_tensor(name, shape, gen).to(dtype) for name, shape in table}


def pad_token(config):
    return config.get("pad_token_id") if config.get("pad_token_id") is not None else 0


def random_tokens(config, count, gen):
    """Real tokens avoid ids 0-2 and the last two ids, where the cases keep
    their special tokens: HF's generate() would read a pad id in a prompt as
    padding, and a loader that guesses the mask from pad ids must not pass."""
    return torch.randint(3, config["vocab_size"] - 2, (count,), generator=gen).tolist()


def make_inputs(config, gen):
    ids, mask = [], []
    for real, side in BATCH_LAYOUT:
        tokens = random_tokens(config, real, gen)
        pad = SEQ_LEN - real
        row_mask = [1] * real
        if side == "left":
            tokens, row_mask = [pad_token(config)] * pad + tokens, [0] * pad + row_mask
        elif side == "right":
            tokens, row_mask = tokens + [pad_token(config)] * pad, row_mask + [0] * pad
        ids.append(tokens)
        mask.append(row_mask)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)


# --- checks ------------------------------------------------------------------------


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def check_building_blocks():
    """Pieces of the reference against independent formulations."""
    x = torch.linspace(-6, 6, 1001)
    tanh_gelu = torch.nn.functional.gelu(x, approximate="tanh")
    check(float((ref.gelu_new(x) - tanh_gelu).abs().max()) < 1e-6, "gelu_new is not the tanh GELU")

    # RoPE in HF's half-split layout is a complex rotation of (x[j], x[j + D/2])
    # by position * inv_freq[j].
    config = {"hidden_size": 32, "num_attention_heads": 2, "rope_theta": 10000.0}
    positions = torch.arange(7)[None]
    cos, sin = ref.rope_tables(config, positions, torch.float64)
    q = torch.randn(1, 1, 7, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    rotated = ref.apply_rope(q, cos, sin)
    angles = positions[0, :, None].double() * ref.rope_inv_freq(config).double()[None, :]
    as_complex = torch.complex(q[..., :8], q[..., 8:]) * torch.polar(torch.ones_like(angles), angles)
    expected = torch.cat((as_complex.real, as_complex.imag), dim=-1)
    check(float((rotated - expected).abs().max()) < 1e-6, "RoPE is not a rotation of (j, j + D/2) pairs")

    h = torch.randn(4, 10, generator=torch.Generator().manual_seed(1))
    scale = torch.randn(10, generator=torch.Generator().manual_seed(2))
    by_hand = scale * h / torch.sqrt((h * h).sum(-1, keepdim=True) / 10 + 1e-6)
    check(float((ref.rms_norm(h, scale, 1e-6) - by_hand).abs().max()) < 1e-5, "RMSNorm")


def loss_by_hand(logits, ids, mask):
    """Pair-by-pair float64 cross-entropy, independent of causal_lm_loss's tensor indexing."""
    total, count = 0.0, 0
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1] - 1):
            if mask[b, t] and mask[b, t + 1]:
                row = logits[b, t].double()
                total += float(torch.logsumexp(row, 0) - row[ids[b, t + 1]])
                count += 1
    return total / count


def check_llama3_scaling(config, w, ids, mask, logits, report):
    scaled = ref.rope_inv_freq(config)
    plain = ref.rope_inv_freq(dict(config, rope_scaling=None))
    scaling = config["rope_scaling"]
    wavelen = 2 * math.pi / plain
    high = scaling["original_max_position_embeddings"] / scaling["high_freq_factor"]
    low = scaling["original_max_position_embeddings"] / scaling["low_freq_factor"]
    bands = (int((wavelen < high).sum()), int(((wavelen >= high) & (wavelen <= low)).sum()), int((wavelen > low).sum()))
    check(all(n > 0 for n in bands), f"llama3 bands (kept, blended, divided) = {bands}: one is empty")
    check(not torch.equal(scaled, plain), "llama3 scaling left inv_freq unchanged")
    unscaled_logits = ref.forward(dict(config, rope_scaling=None), w, ids, mask)
    rel = float((unscaled_logits - logits)[mask.bool()].abs().max() / logits[mask.bool()].abs().max())
    check(rel > 1e-2, f"llama3 scaling changes logits by only {rel:.2e} (relative)")
    report.append(f"llama3 bands kept/blended/divided {bands}, logit change vs unscaled {rel:.2e}")


def check_case(name, config, stored, ids, mask, logits, loss, unpadded, report):
    w = ref.Weights(stored)
    ref.forward(config, w, ids, mask)
    check(not w.unused(), f"tensors not used by the forward: {w.unused()}")
    real = mask.bool()
    check(torch.isfinite(logits).all() and math.isfinite(loss), "non-finite logits or loss")
    max_logit = float(logits[real].abs().max())
    spread = float(logits[real].std())
    check(spread > 0.3, f"logit std {spread:.3f}: too small for bugs to show")

    by_hand = loss_by_hand(logits, ids, mask)
    check(abs(by_hand - loss) <= 1e-6 * abs(by_hand), f"loss {loss} vs pair-by-pair {by_hand}")

    worst = 0.0
    for b, alone in enumerate(unpadded):
        batched = logits[b][real[b]]
        scale = max(1.0, float(alone.abs().max()))
        worst = max(worst, float((batched - alone).abs().max()) / scale)
    check(worst <= BATCH_INVARIANCE_TOL, f"padded vs unpadded logits differ by {worst:.2e} (relative)")

    # The mask must matter: attending to the left padding changes the logits.
    unmasked = ref.forward(config, w, ids[:1], torch.ones_like(mask[:1]))[0][real[0]]
    check(float((unmasked - logits[0][real[0]]).abs().max()) > 1e-3, "left padding does not affect unmasked logits")

    # float32 rounding noise, measured against the same model run in float64.
    exact = ref.forward(config, ref.Weights(stored, torch.float64), ids, mask, torch.float64)
    noise = float((exact - logits.double())[real].abs().max()) / max_logit
    check(noise < 1e-5, f"float32 vs float64 logits differ by {noise:.2e} (relative)")

    if config["torch_dtype"] == "bfloat16":
        check(all(t.dtype == torch.bfloat16 for t in stored.values()), "bf16 case stores non-bf16 weights")
    if config["model_type"] == "qwen3":
        check(config["head_dim"] * config["num_attention_heads"] != config["hidden_size"], "qwen3 head_dim is not independent")
    if (config.get("rope_scaling") or {}).get("rope_type") == "llama3":
        check_llama3_scaling(config, w, ids, mask, logits, report)
    report.append(
        f"max|logit| {max_logit:.3f}, std {spread:.3f}, loss {loss:.5f}, "
        f"batch-invariance {worst:.1e}, fp32-vs-fp64 {noise:.1e}"
    )


# --- generation golden -------------------------------------------------------------


def make_generation(config, stored, gen):
    w = ref.Weights(stored)
    eos = config.get("eos_token_id")
    for attempt in range(100):
        prompt = random_tokens(config, PROMPT_LEN, gen)
        generated, margins = ref.greedy_generate(config, w, prompt, NEW_TOKENS)
        # A model that echoes its last token would hide attention bugs.
        if min(margins) >= MIN_GREEDY_MARGIN and eos not in generated and len(set(generated)) >= MIN_DISTINCT_GENERATED:
            return {
                "prompt_ids": prompt,
                "max_new_tokens": NEW_TOKENS,
                "generated_ids": generated,
                "min_margin": round(min(margins), 6),
            }
    raise CheckFailed("no prompt gives a clear-cut greedy continuation")


# --- output -------------------------------------------------------------------------


def rows_json(obj):
    """JSON with one line per inner list, for readable and stable diffs."""
    lines = ["{"]
    items = list(obj.items())
    for k, (key, value) in enumerate(items):
        end = "," if k + 1 < len(items) else ""
        if isinstance(value, list) and value and isinstance(value[0], list):
            rows = ",\n".join("    " + json.dumps(row) for row in value)
            lines.append(f'  "{key}": [\n{rows}\n  ]{end}')
        else:
            lines.append(f'  "{key}": {json.dumps(value)}{end}')
    return "\n".join(lines + ["}"]) + "\n"


def write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def build_case(name, config, out_dir, report):
    gen = torch.Generator().manual_seed(case_seed(name))
    weights = make_weights(config, gen)
    ids, mask = make_inputs(config, gen)

    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    model_path = os.path.join(case_dir, "model.safetensors")
    safetensors_lite.write(model_path, weights)
    # Everything below is computed from what the file holds, not from memory.
    stored, metadata = safetensors_lite.read(model_path)
    check(metadata == {"format": "pt"}, "metadata lost")
    check(all(torch.equal(stored[k].view(torch.uint8), weights[k].view(torch.uint8)) for k in weights), "weights round trip")

    w = ref.Weights(stored)
    logits = ref.forward(config, w, ids, mask)
    loss = float(ref.causal_lm_loss(logits, ids, mask))
    unpadded = []
    for b in range(ids.shape[0]):
        alone = ids[b][mask[b].bool()][None]
        unpadded.append(ref.forward(config, w, alone, torch.ones_like(alone))[0])
    check_case(name, config, stored, ids, mask, logits, loss, unpadded, report)

    expected = {
        # Padded query positions carry no meaning; zeros make that explicit.
        "logits": logits * mask[..., None].float(),
        "loss": torch.tensor(loss, dtype=torch.float32),
    }
    for b, alone in enumerate(unpadded):
        expected[f"logits_unpadded_{b}"] = alone.contiguous()
    safetensors_lite.write(os.path.join(case_dir, "expected.safetensors"), expected)
    write_text(os.path.join(case_dir, "config.json"), json.dumps(config, indent=2) + "\n")
    write_text(os.path.join(case_dir, "input.json"), rows_json({"input_ids": ids.tolist(), "attention_mask": mask.tolist()}))
    write_text(os.path.join(case_dir, "generate.json"), rows_json(make_generation(config, stored, gen)))


def directory_size(path):
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def main():
    default_out = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "golden")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=default_out, help="output directory (default: tests/golden)")
    args = parser.parse_args()

    torch.set_num_threads(1)  # one summation order, whatever the machine
    check_building_blocks()
    for name, config in CASES.items():
        report = []
        build_case(name, config, args.out, report)
        print(f"{name:22s} " + "; ".join(report))
    size = directory_size(args.out)
    check(size <= SIZE_BUDGET, f"golden files take {size} bytes, over the {SIZE_BUDGET} budget")
    print(f"{len(CASES)} cases, {size / 1024:.0f} KiB in {args.out}")


if __name__ == "__main__":
    main()
