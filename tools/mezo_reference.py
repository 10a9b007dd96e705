#!/usr/bin/python3
"""MeZO-SGD reference trajectories for tests/golden/mezo/, in PyTorch.

    /usr/bin/python3 tools/mezo_reference.py [--out DIR] [--restore copy|inplace]

(/usr/bin/python3 because Debian's python3-torch lives there.)

One step, for every parameter tensor θ with perturbation z (here z = 1 for
every element, ZO2's `debug_mode`):

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
# A power of two, so θ ± εz and 2ε are exact whether an implementation holds ε
# as a float or a double. At 1e-3, |L+ - L-| gets down to 1.4e-3 on gpt2 and
# float32 noise reaches 6e-4 of projected_grad; at 2^-7 it stays near 1e-4.
EPS = 2.0**-7

# With z = 1 an update shifts every element by the same amount, and the loss
# along that one direction has a shallow minimum (0.4-0.6 % below the start on
# gpt2, opt and qwen3). Each lr walks about half-way there in 20 steps, so that
# projected_grad stays well away from zero (where its relative rounding error
# would explode); llama's slope is ten times steeper, hence its small lr.
CASES = {
    "gpt2": {"model": "gpt2", "lr": 1e-3, "weight_decay": 0.0},
    "opt": {"model": "opt", "lr": 1e-3, "weight_decay": 0.0},
    "llama": {"model": "llama", "lr": 3e-5, "weight_decay": 0.0},
    "qwen3": {"model": "qwen3", "lr": 2e-4, "weight_decay": 0.0},
    "gpt2_wd": {"model": "gpt2", "lr": 1e-3, "weight_decay": 0.1},
    # Covers the RMSNorm-family names (q_norm, k_norm, model.norm) that MeZO's and
    # ZO2's name rules would decay and ours does not; wd is large because qwen3's
    # lr is small, so that the decay shows beyond float32 noise.
    "qwen3_wd": {"model": "qwen3", "lr": 2e-4, "weight_decay": 0.5},
}
FINAL_WEIGHTS_LIMIT = 300 * 1024
SIZE_BUDGET = 1536 * 1024

# Check thresholds (see tests/golden/README.md for the measured figures).
MIN_LOSS_GAP = 1e-3  # |L+ - L-|: far above float32 rounding of a loss near 5
MIN_LOSS_DROP = 0.002  # relative, over the 20 steps: 1e4 times the loss's float32 noise
MIN_GRAD_RATIO = 0.3  # smallest |projected_grad| over the run, relative to the first
MAX_FP64_DEVIATION = {"projected_grad": 1e-3, "loss": 1e-6, "weight": 1e-5}
FD_CHECK_EPS = 1e-6  # float64 central difference against autograd; at 1e-5 OPT's ReLU kinks show
FD_CHECK_TOL = 1e-6


# --- the optimizer -------------------------------------------------------------


NO_DECAY_TAGS = ("ln_1.", "ln_2.", "ln_f.", "layer_norm", "layernorm", "model.norm.", "q_norm.", "k_norm.")


def decays(name):
    """Biases and norm scales do not decay; every matrix and embedding does."""
    return not (name.endswith(".bias") or any(tag in name for tag in NO_DECAY_TAGS))


def perturbation(name, param):
    # z = 1: ZO2's debug_mode. A tensor's z depends only on (step, name), so a
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


def mezo_step(params, objective, lr, eps, weight_decay, restore, decay_rule=decays):
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
    # Equal to MeZO's and ZO2's float32 (L+ - L-) / (2ε): the difference of two
    # floats within a factor of 2 is exact, and so is a division by a power of two.
    projected_grad = (loss_plus - loss_minus) / (2 * eps)
    for name, p in params.items():
        # The operation order of ZO2's zo_update, so float32 rounding matches it.
        if decay_rule(name):
            p.sub_(lr * (projected_grad * z[name] + weight_decay * p))
        else:
            p.sub_(lr * projected_grad * z[name])
    return loss_plus, loss_minus, projected_grad


def run(config, weights, data, lr, eps, weight_decay, steps, restore="copy", dtype=torch.float32, decay_rule=decays):
    """Returns the trajectory, the loss before and after, and the final weights."""
    ids, mask = batch(data)
    objective = make_objective(config, ids, mask, dtype)
    params = {name: t.to(dtype).clone() for name, t in weights.items()}
    initial_loss = objective(params)
    trajectory = []
    for step in range(1, steps + 1):
        loss_plus, loss_minus, projected_grad = mezo_step(params, objective, lr, eps, weight_decay, restore, decay_rule)
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


# --- checks ----------------------------------------------------------------------


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def check_parameter_table(config, weights, data):
    w = ref.Weights(weights)
    ref.forward(config, w, *batch(data))
    check(not w.unused(), f"tensors the forward does not read: {w.unused()}")
    # On these architectures the decay rule by name is exactly "rank >= 2".
    wrong = [name for name, t in weights.items() if decays(name) != (t.dim() >= 2)]
    check(not wrong, f"decay rule disagrees with tensor rank for {wrong}")
    vocab = config["vocab_size"]
    check(all(3 <= i < vocab - 2 for row in data for i in row), "data holds special ids")


def check_directional_derivative(config, weights, data):
    """With z = 1, projected_grad estimates the sum of all gradient elements
    (a tied embedding counted once). In float64 with a tiny ε the estimate
    from mezo_step must equal autograd's sum: this catches a tensor perturbed
    twice, or not at all."""
    ids, mask = batch(data)
    params = {name: t.double().requires_grad_() for name, t in weights.items()}
    loss = token_mean_loss(ref.forward(config, ref.Weights(params, torch.float64), ids, mask, torch.float64), ids, mask)
    loss.backward()
    exact = math.fsum(float(p.grad.sum()) for p in params.values())
    objective = make_objective(config, ids, mask, torch.float64)
    frozen = {name: t.double() for name, t in weights.items()}
    _, _, estimate = mezo_step(frozen, objective, 0.0, FD_CHECK_EPS, 0.0, "copy")
    rel = abs(estimate - exact) / abs(exact)
    check(rel < FD_CHECK_TOL, f"projected_grad {estimate} vs autograd directional derivative {exact} ({rel:.1e})")
    return rel


def inplace_round_trip(weights, eps):
    """What one +εz, -2εz, +εz cycle does to float32 weights: the fraction of
    elements that do not come back bit-exact, and the largest change."""
    changed, total, worst = 0, 0, 0.0
    for name, w in weights.items():
        p = w.clone()
        z = perturbation(name, p)
        for scale in (1, -2, 1):
            p.add_(z * (scale * eps))
        changed += int((p != w).sum())
        total += w.numel()
        worst = max(worst, float((p - w).abs().max()))
    return changed / total, worst


def checksums(params):
    """Exactly rounded float64 sum of each tensor's values."""
    return {name: math.fsum(p.double().flatten().tolist()) for name, p in sorted(params.items())}


def deviation(result, other):
    """How far `other` strays from `result`: relative for losses and
    projected_grad, absolute per element for the final weights."""
    steps = list(zip(result["trajectory"], other["trajectory"]))
    grad = max(abs(a["projected_grad"] - b["projected_grad"]) / abs(b["projected_grad"]) for a, b in steps)
    losses = [(a[k], b[k]) for a, b in steps for k in ("loss_plus", "loss_minus")]
    losses.append((result["final_loss"], other["final_loss"]))
    loss = max(abs(a - b) / abs(b) for a, b in losses)
    weight = max(float((p.double() - other["params"][name].double()).abs().max()) for name, p in result["params"].items())
    # Checksum drift per element, the figure a checksum tolerance scales with.
    per_element = max(
        abs(a - b) / result["params"][name].numel()
        for (name, a), b in zip(checksums(result["params"]).items(), checksums(other["params"]).values())
    )
    return {"projected_grad": grad, "loss": loss, "weight": weight, "checksum_per_element": per_element}


def check_trajectory(result):
    steps = result["trajectory"]
    gap = min(abs(s["loss_plus"] - s["loss_minus"]) for s in steps)
    check(gap >= MIN_LOSS_GAP, f"|L+ - L-| falls to {gap:.1e}: projected_grad would be rounding noise")
    drop = (result["initial_loss"] - result["final_loss"]) / result["initial_loss"]
    check(drop >= MIN_LOSS_DROP, f"loss moves by {drop:.2%} only")
    grads = [abs(s["projected_grad"]) for s in steps]
    ratio = min(grads) / grads[0]
    check(ratio >= MIN_GRAD_RATIO, f"projected_grad shrinks to {ratio:.2f} of its first value: near a minimum")
    return gap, drop


# --- output ------------------------------------------------------------------------


def golden_json(case, data, result, weights_file):
    lines = ["{"]
    lines.append(f'  "model": {json.dumps("tests/golden/" + case["model"])},')
    rows = ",\n".join("    " + json.dumps(row) for row in data)
    lines.append(f'  "data": [\n{rows}\n  ],')
    for key, value in [
        ("pad_id", PAD_ID),
        ("steps", len(result["trajectory"])),
        ("lr", case["lr"]),
        ("eps", EPS),
        ("weight_decay", case["weight_decay"]),
        ("perturbation", "ones"),
        ("restore", result["restore"]),
        ("initial_loss", result["initial_loss"]),
    ]:
        lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    names = ",\n".join("    " + json.dumps(name) for name in sorted(result["params"]) if not decays(name))
    lines.append(f'  "no_decay": [\n{names}\n  ],')
    steps = ",\n".join("    " + json.dumps(step) for step in result["trajectory"])
    lines.append(f'  "trajectory": [\n{steps}\n  ],')
    lines.append(f'  "final_loss": {json.dumps(result["final_loss"])},')
    sums = ",\n".join(f"    {json.dumps(name)}: {json.dumps(value)}" for name, value in checksums(result["params"]).items())
    lines.append(f'  "final_checksums": {{\n{sums}\n  }},')
    lines.append(f'  "final_weights": {json.dumps(weights_file)}')
    return "\n".join(lines + ["}"]) + "\n"


def write_bytes(path, blob):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, path)


def build_case(name, case, out_dir, restore):
    config, weights = load_model(case["model"])
    data = make_data(case["model"], config["vocab_size"])
    check_parameter_table(config, weights, data)
    fd_rel = check_directional_derivative(config, weights, data)

    args = (config, weights, data, case["lr"], EPS, case["weight_decay"], STEPS)
    result = run(*args, restore=restore)
    result["restore"] = restore
    gap, drop = check_trajectory(result)
    fp64 = deviation(result, run(*args, restore=restore, dtype=torch.float64))
    for key, bound in MAX_FP64_DEVIATION.items():
        check(fp64[key] <= bound, f"float32 vs float64 {key} deviation {fp64[key]:.1e} > {bound:.0e}")
    other_restore = "inplace" if restore == "copy" else "copy"
    restore_dev = deviation(result, run(*args, restore=other_restore))

    grads = [s["projected_grad"] for s in result["trajectory"]]
    print(
        f"{name:8s} loss {result['initial_loss']:.5f} -> {result['final_loss']:.5f} ({-drop:+.2%}), "
        f"g {grads[0]:.4f} -> {grads[-1]:.4f}, max|lr g| {max(abs(case['lr'] * g) for g in grads):.1e}, "
        f"min|L+ - L-| {gap:.1e}, fd-vs-autograd {fd_rel:.1e}"
    )
    for label, dev in (("fp32 vs fp64", fp64), (f"{restore} vs {other_restore}", restore_dev)):
        print(
            f"{'':8s} {label:18s} g {dev['projected_grad']:.1e}, loss {dev['loss']:.1e} (rel); "
            f"weights {dev['weight']:.1e}, checksum/numel {dev['checksum_per_element']:.1e} (abs)"
        )
    if restore == "copy":
        fraction, worst = inplace_round_trip(weights, EPS)
        print(f"{'':8s} one in-place cycle changes {fraction:.1%} of the initial weights, by up to {worst:.1e}")
    if case["weight_decay"]:
        # The decay must move the weights far beyond float32 noise, or a test could
        # not tell whether it was applied (or applied to the wrong tensors).
        without = deviation(result, run(*args[:5], 0.0, STEPS, restore=restore))
        decay_all = deviation(result, run(*args, restore=restore, decay_rule=lambda _: True))
        for label, dev in (("wd = 0", without), ("wd on all tensors", decay_all)):
            check(dev["weight"] > 20 * fp64["weight"], f"{label}: weights move {dev['weight']:.1e} only")
            print(f"{'':8s} {label:18s} weights {dev['weight']:.1e}, final loss {dev['loss']:.1e}")

    os.makedirs(out_dir, exist_ok=True)
    blob = safetensors_lite.encode({k: v.contiguous() for k, v in result["params"].items()})
    weights_file = None
    if len(blob) <= FINAL_WEIGHTS_LIMIT:
        weights_file = f"{name}.final.safetensors"
        path = os.path.join(out_dir, weights_file)
        write_bytes(path, blob)
        stored, _ = safetensors_lite.read(path)
        check(stored.keys() == result["params"].keys(), "final weights: names lost")
        check(all(torch.equal(stored[k], v) for k, v in result["params"].items()), "final weights round trip")
    text = golden_json(case, data, result, weights_file)
    check(json.loads(text)["trajectory"] == result["trajectory"], "JSON does not round-trip the trajectory")
    write_bytes(os.path.join(out_dir, f"{name}.json"), text.encode("utf-8"))


def directory_size(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "mezo"), help="output directory")
    parser.add_argument("--restore", choices=["copy", "inplace"], default="copy", help="how θ ± εz is formed (default copy)")
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="only these cases (default all)")
    args = parser.parse_args()

    torch.set_num_threads(1)  # one summation order, whatever the machine
    for name in args.case or CASES:
        build_case(name, CASES[name], args.out, args.restore)
    size = directory_size(args.out)
    check(size <= SIZE_BUDGET, f"{args.out} takes {size} bytes, over the {SIZE_BUDGET} budget")
    print(f"{size / 1024:.0f} KiB in {args.out}")


if __name__ == "__main__":
    main()
