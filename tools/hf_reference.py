"""Reference forward passes of four Hugging Face causal LMs, written from scratch.

Each `forward(config, weights, input_ids, attention_mask)` reads parameters by
the exact names `save_pretrained` writes and returns logits [B, T, V]. The
arithmetic follows transformers' eager code path in float32: the same op order
where it affects rounding (e.g. OPT scales q before q·k, GPT-2 divides scores
by sqrt(D), LLaMA multiplies them by D**-0.5), masks filled with
finfo(float32).min, and RoPE tables computed in float32.

Conventions that are ours rather than HF's (see tests/golden/README.md):
- GPT-2, LLaMA and Qwen3 take position_ids = cumsum(mask) - 1 with padded
  slots set to 1, as HF's generate() does, so padding never shifts positions.
  OPT derives positions from the mask itself.
- Logits at padded query positions are meaningless and are not compared.

Letters: B batch, T time, C hidden, H query heads, K key/value heads,
D head dim, V vocab.
"""

import math

import torch
import torch.nn.functional as F


class Weights:
    """Parameter lookup by HF name that remembers which names were read, so the
    generator can prove every tensor it writes takes part in the forward."""

    def __init__(self, tensors, dtype=torch.float32):
        self._tensors = {name: t.to(dtype) for name, t in tensors.items()}
        self.used = set()

    def __call__(self, name):
        self.used.add(name)
        return self._tensors[name]

    def optional(self, name):
        return self(name) if name in self._tensors else None

    def unused(self):
        return sorted(set(self._tensors) - self.used)


# --- shared pieces -----------------------------------------------------------


def gelu_new(x):
    # The tanh approximation, spelled as HF's NewGELUActivation spells it.
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACTIVATIONS = {
    "gelu_new": gelu_new,
    "gelu": F.gelu,  # exact erf form
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


def linear(x, weight, bias=None):
    """nn.Linear: weight is [out, in]."""
    y = x @ weight.t()
    return y if bias is None else y + bias


def layer_norm(x, weight, bias, eps):
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def rms_norm(x, weight, eps):
    variance = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


def generate_position_ids(mask):
    """HF generate()'s positions: real tokens count 0, 1, ...; padding gets 1."""
    positions = mask.long().cumsum(-1) - 1
    return positions.masked_fill(mask == 0, 1)


def additive_attention_mask(mask, dtype):
    """[B, 1, T, T]: 0 where query t may see key s (s <= t and key s is real),
    finfo.min elsewhere. Rows of padded queries may be fully masked; softmax
    then spreads evenly over all keys, which keeps them finite and unused."""
    T = mask.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    allowed = causal[None, :, :] & mask.bool()[:, None, :]
    bias = torch.zeros(allowed.shape, dtype=dtype)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def split_heads(x, head_dim):
    """[B, T, N*D] -> [B, N, T, D]"""
    B, T, _ = x.shape
    return x.view(B, T, -1, head_dim).transpose(1, 2)


def merge_heads(x):
    """[B, N, T, D] -> [B, T, N*D]"""
    B, N, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, N * D)


def attend(q, k, v, mask_bias, scale=None, divisor=None):
    """Eager attention. q [B,H,T,D], k and v [B,K,T,D] with H a multiple of K:
    query head h reads key/value head h // (H // K), as HF's repeat_kv does."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    scores = q @ k.transpose(-1, -2)
    if scale is not None:
        scores = scores * scale
    if divisor is not None:
        scores = scores / divisor
    probs = torch.softmax(scores + mask_bias, dim=-1)
    return probs @ v


def lm_head(config, w, hidden, embedding_name, default_tied):
    # A missing key means the config class default: true for GPT-2 and OPT,
    # false for LlamaConfig and Qwen3Config.
    if config.get("tie_word_embeddings", default_tied):
        return hidden @ w(embedding_name).t()
    return hidden @ w("lm_head.weight").t()


# --- GPT-2 -------------------------------------------------------------------


def gpt2_forward(config, w, input_ids, mask, dtype=torch.float32):
    C = config["n_embd"]
    D = C // config["n_head"]
    eps = config.get("layer_norm_epsilon", 1e-5)
    act = ACTIVATIONS[config.get("activation_function", "gelu_new")]
    divisor = math.sqrt(D) if config.get("scale_attn_weights", True) else None
    if config.get("scale_attn_by_inverse_layer_idx") or config.get("reorder_and_upcast_attn"):
        raise NotImplementedError("GPT-2 layer-index attention scaling")

    x = w("transformer.wte.weight")[input_ids] + w("transformer.wpe.weight")[generate_position_ids(mask)]
    mask_bias = additive_attention_mask(mask, dtype)
    for i in range(config["n_layer"]):
        p = f"transformer.h.{i}."
        # Conv1D stores weights [in, out], so activations multiply on the left.
        h = layer_norm(x, w(p + "ln_1.weight"), w(p + "ln_1.bias"), eps)
        qkv = h @ w(p + "attn.c_attn.weight") + w(p + "attn.c_attn.bias")
        q, k, v = (split_heads(part, D) for part in qkv.split(C, dim=-1))
        a = merge_heads(attend(q, k, v, mask_bias, divisor=divisor))
        x = x + (a @ w(p + "attn.c_proj.weight") + w(p + "attn.c_proj.bias"))
        h = layer_norm(x, w(p + "ln_2.weight"), w(p + "ln_2.bias"), eps)
        h = act(h @ w(p + "mlp.c_fc.weight") + w(p + "mlp.c_fc.bias"))
        x = x + (h @ w(p + "mlp.c_proj.weight") + w(p + "mlp.c_proj.bias"))
    x = layer_norm(x, w("transformer.ln_f.weight"), w("transformer.ln_f.bias"), eps)
    return lm_head(config, w, x, "transformer.wte.weight", default_tied=True)


# --- OPT ---------------------------------------------------------------------

OPT_POSITION_OFFSET = 2  # fairseq legacy: rows 0 and 1 of embed_positions are never real positions


def opt_position_ids(mask):
    """OPT's own rule: cumsum(mask) * mask - 1, so padding gets -1 (row 1 after the offset)."""
    mask = mask.long()
    return mask.cumsum(1) * mask - 1


def opt_forward(config, w, input_ids, mask, dtype=torch.float32):
    C = config["hidden_size"]
    D = C // config["num_attention_heads"]
    pre_norm = config.get("do_layer_norm_before", True)
    act = ACTIVATIONS[config.get("activation_function", "relu")]
    eps = 1e-5  # OPT's LayerNorms use the nn.LayerNorm default; the config has no epsilon

    def norm(x, name):
        # layer_norm_elementwise_affine=false: no weight/bias tensors exist at all.
        return layer_norm(x, w.optional(name + ".weight"), w.optional(name + ".bias"), eps)

    def proj(x, name):
        return linear(x, w(name + ".weight"), w.optional(name + ".bias"))

    d = "model.decoder."
    projected = config.get("word_embed_proj_dim", C) != C
    x = w(d + "embed_tokens.weight")[input_ids]
    if projected:
        x = linear(x, w(d + "project_in.weight"))
    x = x + w(d + "embed_positions.weight")[opt_position_ids(mask) + OPT_POSITION_OFFSET]

    mask_bias = additive_attention_mask(mask, dtype)
    for i in range(config["num_hidden_layers"]):
        p = f"{d}layers.{i}."
        residual = x
        h = norm(x, p + "self_attn_layer_norm") if pre_norm else x
        # OPT scales q (bias included) before the product, not the scores.
        q = split_heads(proj(h, p + "self_attn.q_proj") * D**-0.5, D)
        k = split_heads(proj(h, p + "self_attn.k_proj"), D)
        v = split_heads(proj(h, p + "self_attn.v_proj"), D)
        x = residual + proj(merge_heads(attend(q, k, v, mask_bias)), p + "self_attn.out_proj")
        if not pre_norm:
            x = norm(x, p + "self_attn_layer_norm")
        residual = x
        h = norm(x, p + "final_layer_norm") if pre_norm else x
        x = residual + proj(act(proj(h, p + "fc1")), p + "fc2")
        if not pre_norm:
            x = norm(x, p + "final_layer_norm")
    # Post-LN models (350m) have no final norm; pre-LN ones have it unless the
    # legacy _remove_final_layer_norm flag says otherwise.
    if pre_norm and not config.get("_remove_final_layer_norm", False):
        x = norm(x, d + "final_layer_norm")
    if projected:
        x = linear(x, w(d + "project_out.weight"))
    return lm_head(config, w, x, d + "embed_tokens.weight", default_tied=True)


# --- RoPE decoders: LLaMA and Qwen3 ------------------------------------------


def head_dim_of(config):
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def rope_inv_freq(config):
    """inv_freq [D/2] in float32, including rope_scaling of type llama3."""
    D = head_dim_of(config)
    base = float(config.get("rope_theta", 10000.0))
    inv_freq = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    scaling = config.get("rope_scaling")
    if not scaling:
        return inv_freq
    rope_type = scaling.get("rope_type", scaling.get("type"))
    if rope_type == "default":
        return inv_freq
    if rope_type != "llama3":
        raise NotImplementedError(f"rope_scaling type {rope_type}")
    return llama3_scaled_inv_freq(inv_freq, scaling)


def llama3_scaled_inv_freq(inv_freq, scaling):
    """Llama 3.1 frequency remap: short wavelengths kept, long ones divided by
    `factor`, and a linear blend (in 1/wavelength) between the two bands."""
    factor = scaling["factor"]
    low_freq_factor = scaling["low_freq_factor"]
    high_freq_factor = scaling["high_freq_factor"]
    old_context = scaling["original_max_position_embeddings"]
    low_freq_wavelen = old_context / low_freq_factor
    high_freq_wavelen = old_context / high_freq_factor

    wavelen = 2 * math.pi / inv_freq
    long_band = wavelen > low_freq_wavelen
    short_band = wavelen < high_freq_wavelen
    divided = torch.where(long_band, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    blended = (1 - smooth) * divided / factor + smooth * divided
    return torch.where(~long_band & ~short_band, blended, divided)


def rope_tables(config, position_ids, dtype):
    """cos, sin [B, T, D]; angles in float32 like HF, then cast to dtype."""
    angles = position_ids.float()[..., None] * rope_inv_freq(config)[None, None, :]
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x, cos, sin):
    """x [B, N, T, D]; cos/sin [B, T, D]. Pairs dimension j with j + D/2."""
    cos, sin = cos[:, None], sin[:, None]
    return x * cos + rotate_half(x) * sin


def _rope_decoder_forward(config, w, input_ids, mask, dtype, qk_norm):
    D = head_dim_of(config)
    eps = config.get("rms_norm_eps", 1e-6)
    act = ACTIVATIONS[config.get("hidden_act", "silu")]
    B, T = input_ids.shape

    def proj(x, name):
        return linear(x, w(name + ".weight"), w.optional(name + ".bias"))

    x = w("model.embed_tokens.weight")[input_ids]
    cos, sin = rope_tables(config, generate_position_ids(mask), dtype)
    mask_bias = additive_attention_mask(mask, dtype)
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, w(p + "input_layernorm.weight"), eps)
        q = proj(h, p + "self_attn.q_proj").view(B, T, -1, D)
        k = proj(h, p + "self_attn.k_proj").view(B, T, -1, D)
        v = proj(h, p + "self_attn.v_proj").view(B, T, -1, D)
        if qk_norm:
            # Qwen3: RMSNorm over each head's D values, before RoPE.
            q = rms_norm(q, w(p + "self_attn.q_norm.weight"), eps)
            k = rms_norm(k, w(p + "self_attn.k_norm.weight"), eps)
        q = apply_rope(q.transpose(1, 2), cos, sin)
        k = apply_rope(k.transpose(1, 2), cos, sin)
        a = attend(q, k, v.transpose(1, 2), mask_bias, scale=D**-0.5)
        x = x + proj(merge_heads(a), p + "self_attn.o_proj")
        h = rms_norm(x, w(p + "post_attention_layernorm.weight"), eps)
        gated = act(proj(h, p + "mlp.gate_proj")) * proj(h, p + "mlp.up_proj")
        x = x + proj(gated, p + "mlp.down_proj")
    x = rms_norm(x, w("model.norm.weight"), eps)
    return lm_head(config, w, x, "model.embed_tokens.weight", default_tied=False)


def llama_forward(config, w, input_ids, mask, dtype=torch.float32):
    return _rope_decoder_forward(config, w, input_ids, mask, dtype, qk_norm=False)


def qwen3_forward(config, w, input_ids, mask, dtype=torch.float32):
    if config.get("use_sliding_window"):
        raise NotImplementedError("Qwen3 sliding-window attention")
    return _rope_decoder_forward(config, w, input_ids, mask, dtype, qk_norm=True)


FORWARDS = {
    "GPT2LMHeadModel": gpt2_forward,
    "OPTForCausalLM": opt_forward,
    "LlamaForCausalLM": llama_forward,
    "Qwen3ForCausalLM": qwen3_forward,
}


def forward(config, w, input_ids, mask, dtype=torch.float32):
    (architecture,) = config["architectures"]
    return FORWARDS[architecture](config, w, input_ids, mask, dtype)


# --- loss and generation -----------------------------------------------------


def causal_lm_loss(logits, input_ids, mask):
    """Mean next-token cross-entropy over pairs (t, t+1) where both tokens are
    real: logits[:, t] predicts input_ids[:, t+1]."""
    pairs = (mask[:, :-1] * mask[:, 1:]).bool()
    predicted = logits[:, :-1][pairs].float()
    targets = input_ids[:, 1:][pairs]
    return F.cross_entropy(predicted, targets, reduction="mean")


def greedy_generate(config, w, prompt_ids, new_tokens):
    """Argmax continuation with a full recompute per step. Also returns each
    step's gap between the best and second-best logit."""
    ids = list(prompt_ids)
    margins = []
    for _ in range(new_tokens):
        tokens = torch.tensor([ids], dtype=torch.long)
        last = forward(config, w, tokens, torch.ones_like(tokens))[0, -1]
        top = torch.topk(last, 2).values
        margins.append(float(top[0] - top[1]))
        ids.append(int(torch.argmax(last)))
    return ids[len(prompt_ids) :], margins
