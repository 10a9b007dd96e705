#!/usr/bin/python3
"""MeZO-SGD reference trajectories for tests/golden/mezo/, in PyTorch.

    /usr/bin/python3 tools/mezo_reference.py [--out DIR] [--restore copy|inplace]

(/usr/bin/python3 because Debian's python3-torch lives there.)

One step, for every parameter tensor θ with perturbation z (here z = 1 for
every element, ZO2's debug mode):

    L+ = loss(θ + εz),  L- = loss(θ - εz),  g = (L+ - L-) / (2ε)
    θ ← θ - lr·(g·z + wd·θ)   for matrices and embeddings,
    θ ← θ - lr·g·z            for biases and norm scales.

--restore inplace perturbs the weights in place by +εz, -2εz, +εz as MeZO and
ZO2 do; in float32 that does not give back the same bits. --restore copy (the
default, and the committed goldens) builds θ ± εz from an unchanged θ, as
zotune does. The forward passes are tools/hf_reference.py's; the objective is
the token-mean next-token cross-entropy of tests/golden/README.md.

Each run also replays every case in float64, with the other restore variant
and with weight decay changed, and prints how far those trajectories move: the
C++ tolerances are set from these figures. A failed check stops the run.
"""

import argparse
import hashlib
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as ref  # noqa: E402
import safetensors_lite  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 20
PAD_ID = 0
# Unequal lengths so right padding and the token mean (not a sequence mean) matter.
SEQUENCE_LENGTHS = [12, 7, 16, 9, 5]
EPS = 1e-3

# lr is set per model so that |lr·g| is about 1e-4 to 1e-3: with z = 1 the update
# shifts every element by the same amount, so larger steps wreck the model.
CASES = {
    "gpt2": {"model": "gpt2", "lr": 1e-5, "weight_decay": 0.0},
    "opt": {"model": "opt", "lr": 1e-5, "weight_decay": 0.0},
    "llama": {"model": "llama", "lr": 1e-5, "weight_decay": 0.0},
    "qwen3": {"model": "qwen3", "lr": 1e-5, "weight_decay": 0.0},
    "gpt2_wd": {"model": "gpt2", "lr": 1e-5, "weight_decay": 0.1},
}
FINAL_WEIGHTS_LIMIT = 300 * 1024
SIZE_BUDGET = 1536 * 1024

# Check thresholds (see tests/golden/README.md for the measured figures).
MIN_LOSS_GAP = 1e-3  # |L+ - L-|: far above float32 rounding of a loss near 5
MIN_LOSS_DROP = 0.01  # relative, over the 20 steps
MAX_FP64_DEVIATION = 1e-3  # relative, projected_grad and losses, float32 vs float64


# --- the optimizer -------------------------------------------------------------


NO_DECAY_TAGS = ("ln_1.", "ln_2.", "ln_f.", "layer_norm", "layernorm", "model.norm.", "q_norm.", "k_norm.")


def decays(name):
    """Biases and norm scales do not decay; every matrix and embedding does."""
    return not (name.endswith(".bias") or any(tag in name for tag in NO_DECAY_TAGS))


def perturbation(name, param):
    # z = 1: ZO2's debug mode. A tensor's z depends only on (step, name), so a
    # Gaussian stream would slot in here.
    return torch.ones_like(param)


def token_mean_loss(logits, ids, mask):
    """Cross-entropy of logits[:, t] against ids[:, t+1] over pairs whose two
    tokens are both real, averaged over tokens, in the logits' own dtype."""
    pairs = (mask[:, :-1] * mask[:, 1:]).bool()
    return F.cross_entropy(logits[:, :-1][pairs], ids[:, 1:][pairs], reduction="mean")


def make_objective(config, ids, mask, dtype):
    def loss(params):
        return float(token_mean_loss(ref.forward(config, ref.Weights(params, dtype), ids, mask, dtype), ids, mask))

    return loss


def mezo_step(params, objective, lr, eps, weight_decay, restore):
    """One MeZO-SGD step on `params` (name -> tensor, updated in place).
    Returns (L+, L-, projected_grad)."""
    z = {name: perturbation(name, p) for name, p in params.items()}
    if restore == "copy":
        loss_plus = objective({name: p + eps * z[name] for name, p in params.items()})
        loss_minus = objective({name: p - eps * z[name] for name, p in params.items()})
    else:
        for scale in (1, -2):
            for name, p in params.items():
                p.add_(z[name] * (scale * eps))
            if scale == 1:
                loss_plus = objective(params)
            else:
                loss_minus = objective(params)
        for name, p in params.items():
            p.add_(z[name] * eps)
    # MeZO and ZO2 take .item() of the difference; the losses are float32 values
    # either way, and the difference of two nearby floats is exact.
    projected_grad = (loss_plus - loss_minus) / (2 * eps)
    for name, p in params.items():
        # The operation order of ZO2's zo_update, so float32 rounding matches it.
        if decays(name):
            p.sub_(lr * (projected_grad * z[name] + weight_decay * p))
        else:
            p.sub_(lr * projected_grad * z[name])
    return loss_plus, loss_minus, projected_grad


def run(config, weights, data, lr, eps, weight_decay, steps, restore="copy", dtype=torch.float32):
    """Returns the trajectory, the loss before and after, and the final weights."""
    ids, mask = batch(data)
    objective = make_objective(config, ids, mask, dtype)
    params = {name: t.to(dtype).clone() for name, t in weights.items()}
    initial_loss = objective(params)
    trajectory = []
    for step in range(1, steps + 1):
        loss_plus, loss_minus, projected_grad = mezo_step(params, objective, lr, eps, weight_decay, restore)
        trajectory.append({"step": step, "loss_plus": loss_plus, "loss_minus": loss_minus, "projected_grad": projected_grad})
    return {"initial_loss": initial_loss, "trajectory": trajectory, "final_loss": objective(params), "params": params}


# --- data ----------------------------------------------------------------------


def model_seed(name):
    return int.from_bytes(hashlib.sha256(("mezo/" + name).encode()).digest()[:4], "little")


def make_data(model, vocab):
    """Ids avoid 0-2 and the last two ids, where the golden configs keep their
    special tokens (and 0 is the padding)."""
    gen = torch.Generator().manual_seed(model_seed(model))
    return [torch.randint(3, vocab - 2, (n,), generator=gen).tolist() for n in SEQUENCE_LENGTHS]


def batch(data):
    """Right-padded [B, T] ids (PAD_ID) and mask."""
    T = max(len(row) for row in data)
    ids = [row + [PAD_ID] * (T - len(row)) for row in data]
    mask = [[1] * len(row) + [0] * (T - len(row)) for row in data]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)


def load_model(model):
    model_dir = os.path.join(ROOT, "tests", "golden", model)
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    weights, _ = safetensors_lite.read(os.path.join(model_dir, "model.safetensors"))
    return config, weights
