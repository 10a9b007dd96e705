#!/usr/bin/env python3
"""numpy.random.seed(s); numpy.random.permutation(n) without numpy (python3
stdlib only), to check zotune's MeZO sampling (src/data/eval_protocol.cpp).

The Mersenne Twister is CPython's (random.getrandbits(32) is MT19937's
genrand_int32); its state is set to what numpy's legacy seeding of an integer
builds (init_genrand). The shuffle is numpy's legacy one: for i from n-1 down
to 1, swap a[i] with a[j], j uniform in [0, i] drawn by masking 32-bit outputs
to the smallest all-ones mask >= i and rejecting values > i.
Known values it reproduces: seed 0, n 10 -> [2, 8, 4, 9, 1, 6, 7, 3, 0, 5].

Usage: numpy_permutation.py SEED:N [SEED:N ...]  -> one JSON list per pair.
"""
import json
import random
import sys


def mt_for_seed(seed):
    state = [seed & 0xFFFFFFFF]
    for i in range(1, 624):
        prev = state[-1]
        state.append((1812433253 * (prev ^ (prev >> 30)) + i) & 0xFFFFFFFF)
    r = random.Random()
    r.setstate((3, tuple(state + [624]), None))
    return r


def permutation(seed, n):
    r = mt_for_seed(seed)
    a = list(range(n))
    for i in range(n - 1, 0, -1):
        mask = (1 << i.bit_length()) - 1
        while True:
            j = r.getrandbits(32) & mask
            if j <= i:
                break
        a[i], a[j] = a[j], a[i]
    return a


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        seed, n = arg.split(":")
        print(json.dumps(permutation(int(seed), int(n))))
