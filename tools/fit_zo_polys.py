#!/usr/bin/env python3
"""Fits the polynomial coefficients of src/kernels/zo_rng-inl.h (Box-Muller in
float with +, -, * only) and measures their error over every float input,
simulating the kernel's exact operation order in numpy float32.

    python3 tools/fit_zo_polys.py        (about 30 s; needs numpy and mpmath)

Fits are minimax in relative error by Lawson's algorithm (iteratively
reweighted least squares) on a dense grid, in double precision.
  ln(1 + x) = x + x^2 R(x),  x in [sqrt(1/2) - 1, sqrt(2) - 1], R of degree 7
  sin(pi/2 s) = s S(s^2),    s in [0, 1/2], S of degree 3, S(0) = float(pi/2)
  cos(pi/2 s) = 1 + s^2 C(s^2), C of degree 3
"""
import mpmath as mp
import numpy as np

f32 = np.float32


def lawson(A, y, w, iters=300):
    """Coefficients c minimizing max |w (A c - y)|."""
    lam = np.full(len(y), 1.0 / len(y))
    for _ in range(iters):
        sw = np.sqrt(lam) * w
        c = np.linalg.lstsq(A * sw[:, None], y * sw, rcond=None)[0]
        e = np.abs(w * (A @ c - y))
        lam = lam * e
        lam /= lam.sum()
    return c


def fit_ln1p():
    lo, hi = np.sqrt(0.5) - 1, np.sqrt(2) - 1
    x = np.concatenate([np.linspace(lo, -1e-4, 4000), np.linspace(1e-4, hi, 4000)])
    with mp.workdps(40):
        R = np.array([float((mp.log1p(mp.mpf(v)) - mp.mpf(v)) / mp.mpf(v) ** 2) for v in x])
    A = np.stack([x**k for k in range(8)], 1)
    return [f32(v) for v in lawson(A, R, x**2 / np.abs(np.log1p(x)))]


def fit_sin():
    s = np.linspace(1e-4, 0.5, 6000)
    a0 = f32(np.pi / 2)
    y = np.sin(np.pi / 2 * s) / s
    A = np.stack([s ** (2 * k) for k in range(1, 4)], 1)
    return [a0] + [f32(v) for v in lawson(A, y - np.float64(a0), 1 / y)]


def fit_cos():
    s = np.linspace(1e-4, 0.5, 6000)
    with mp.workdps(40):
        y = np.array([float((mp.cos(mp.pi / 2 * mp.mpf(v)) - 1) / mp.mpf(v) ** 2) for v in s])
    A = np.stack([s ** (2 * k) for k in range(4)], 1)
    return [f32(v) for v in lawson(A, y, s**2 / np.cos(np.pi / 2 * s))]


def horner(c, x):
    r = f32(c[-1])
    for k in range(len(c) - 2, -1, -1):
        r = (r * x + c[k]).astype(f32)
    return r


def ulp(x):
    x = np.abs(x).astype(f32)
    return (np.nextafter(x, f32(np.inf)) - x).astype(np.float64)


def ln_u1(c, m1):
    """ln(m1 / 2^24) for integer m1 in [1, 2^24], in the kernel's operation order."""
    bits = m1.astype(np.int32).astype(f32).view(np.uint32)
    mant = (bits & 0x007FFFFF) | 0x3F800000
    above = mant > 0x3FB504F3
    mant = np.where(above, mant - 0x00800000, mant).astype(np.uint32)
    e = ((bits >> 23).astype(np.int32) - (127 + 24) + above).astype(f32)
    x = (mant.view(f32) - f32(1)).astype(f32)
    ln1p = (x + ((x * x).astype(f32) * horner(c, x)).astype(f32)).astype(f32)
    return ((e * f32(0.693359375)).astype(f32) +
            (ln1p + (e * f32(-2.12194440e-4)).astype(f32)).astype(f32)).astype(f32)


def main():
    cl, cs, cc = fit_ln1p(), fit_sin(), fit_cos()
    for name, c in (("ln1p R", cl), ("sin S", cs), ("cos C", cc)):
        print(name, ", ".join(str(v) + "f" for v in c))  # shortest float literals

    m1 = np.arange(1, 2**24 + 1, dtype=np.uint32)
    truth = np.log(m1.astype(np.float64)) - 24 * np.log(2.0)
    ln = ln_u1(cl, m1).astype(np.float64)
    nz = truth != 0
    print("ln u1: max ulp %.2f" % (np.abs(ln - truth)[nz] / ulp(truth[nz])).max())
    rad = np.sqrt((ln * -2).astype(f32)).astype(np.float64)
    rad_true = np.sqrt(-2 * truth)
    print("sqrt(-2 ln u1): max relative error %.3g" % (np.abs(rad - rad_true)[nz] / rad_true[nz]).max())

    s = (np.arange(0, 2**21 + 1).astype(f32) * f32(2.0**-22)).astype(f32)
    s2 = (s * s).astype(f32)
    sin_s = (s * horner(cs, s2)).astype(f32).astype(np.float64)
    cos_s = (f32(1) + (s2 * horner(cc, s2)).astype(f32)).astype(f32).astype(np.float64)
    ts, tc = np.sin(np.pi / 2 * s.astype(np.float64)), np.cos(np.pi / 2 * s.astype(np.float64))
    print("sin: max ulp %.2f" % (np.abs(sin_s - ts)[1:] / ulp(ts[1:])).max())
    print("cos: max ulp %.2f" % (np.abs(cos_s - tc) / ulp(tc)).max())


if __name__ == "__main__":
    main()
