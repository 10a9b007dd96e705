#!/usr/bin/python3
"""PyTorch MeZO-SGD baseline, timed: the step as MeZO's trainer and ZO2's
optimizer run it (in-place perturbation +eps z, -2 eps z, +eps z with z
regenerated from a seed by torch.normal, then the update with z regenerated
once more), on the float32 PyTorch forward of tools/hf_reference.py.

    /usr/bin/python3 bench/pytorch_mezo_baseline.py --model DIR [--batch-size 4 --seq-len 128 --steps 3 --threads 2]

Prints one JSON line with sec_per_step_median and tokens_per_sec, like
`zotune bench`. bench/compare_pytorch.sh runs both interleaved.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import hf_reference as ref  # noqa: E402
import safetensors_lite  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-7)
    ap.add_argument("--eps", type=float, default=1e-3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with open(os.path.join(a.model, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    tensors, _ = safetensors_lite.read(os.path.join(a.model, "model.safetensors"))
    params = {name: t.to(torch.float32).contiguous() for name, t in tensors.items()}
    weights = ref.Weights(params)
    weights._tensors = params  # the forward reads the tensors we perturb in place
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config["vocab_size"], (a.batch_size, a.seq_len), generator=gen)
    mask = torch.ones_like(ids)

    def loss():
        with torch.no_grad():
            logits = ref.forward(config, weights, ids, mask)
            return ref.causal_lm_loss(logits, ids, mask).item()

    def perturb(seed, scale):
        torch.manual_seed(seed)
        for p in params.values():
            z = torch.normal(mean=0, std=1, size=p.size(), dtype=p.dtype)
            p.add_(z, alpha=scale * a.eps)

    def step(seed):
        perturb(seed, 1)
        l1 = loss()
        perturb(seed, -2)
        l2 = loss()
        perturb(seed, 1)
        g = (l1 - l2) / (2 * a.eps)
        torch.manual_seed(seed)
        for name, p in params.items():
            z = torch.normal(mean=0, std=1, size=p.size(), dtype=p.dtype)
            if p.dim() >= 2:
                p.sub_(a.lr * (g * z + 0.0 * p))
            else:
                p.sub_(a.lr * g * z)

    step(1)  # warm-up
    times = []
    for s in range(a.steps):
        t0 = time.perf_counter()
        step(2 + s)
        times.append(time.perf_counter() - t0)
    fwd = []
    for _ in range(min(a.steps, 3)):
        t0 = time.perf_counter()
        loss()
        fwd.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({"impl": "pytorch-mezo", "torch": torch.__version__, "threads": a.threads,
                      "batch_size": a.batch_size, "seq_len": a.seq_len, "steps": a.steps,
                      "sec_per_step_median": med, "tokens_per_sec": a.batch_size * a.seq_len / med,
                      "forward_sec_median": statistics.median(fwd), "sec_per_step_all": times}))


if __name__ == "__main__":
    main()
