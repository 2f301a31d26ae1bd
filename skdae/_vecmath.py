"""Elementary functions that LLVM can vectorize, for the Numba kernels.

Numba compiles ``np.exp`` and ``np.log1p`` to calls into the C math library,
one element at a time; without Intel's SVML (absent from the llvmlite wheels)
a loop calling them never vectorizes, and it dominated an epoch. The
functions here use only arithmetic, ``floor`` and a bit cast, so a loop over
them compiles to SIMD code. Each has a float32 and a float64 implementation
(chosen at compile time from the argument type) accurate to about 2 ulp, so
float32 kernels compute in float32.

They cover only what the kernels need: ``exp`` of a non-positive argument
(the sigmoid and the softplus are written with ``exp(-|a|)``), ``log1p``
on [0, 1] and ``tanh``.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload


@intrinsic
def _pow2i(typingctx, like, n):
    """``2.0**n`` in the float type of ``like``, built from exponent bits.

    ``n`` must lie in the normal exponent range of that type.
    """
    if like not in (types.float32, types.float64) or not isinstance(
            n, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        k = args[1]
        if like == types.float32:
            ity, fty, bias, shift = ir.IntType(32), ir.FloatType(), 127, 23
        else:
            ity, fty, bias, shift = ir.IntType(64), ir.DoubleType(), 1023, 52
        if k.type.width > ity.width:
            k = builder.trunc(k, ity)
        elif k.type.width < ity.width:
            k = builder.sext(k, ity)
        bits = builder.shl(builder.add(k, ir.Constant(ity, bias)),
                           ir.Constant(ity, shift))
        return builder.bitcast(bits, fty)

    return like(like, n), codegen


def exp_nonpositive(x):
    """``exp(x)`` for ``x <= 0`` (compiled only; see the overload)."""
    raise NotImplementedError("only callable from Numba-compiled code")


def log1p_unit(x):
    """``log1p(x)`` for ``0 <= x <= 1`` (compiled only; see the overload)."""
    raise NotImplementedError("only callable from Numba-compiled code")


def tanh(x):
    """``tanh(x)`` (compiled only; see the overload)."""
    raise NotImplementedError("only callable from Numba-compiled code")


_F = np.float32


@overload(exp_nonpositive)
def _exp_nonpositive(x):
    # Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2, then a polynomial
    # (float32, Cephes expf) or a Pade form (float64, Cephes exp) for exp(r).
    # Arguments below the smallest normal result are clamped there (the
    # error is < 1e-38 absolute); NaN propagates.
    if x == types.float32:
        def impl(x):
            if x < _F(-87.0):
                x = _F(-87.0)
            n = np.floor(x * _F(1.44269504088896341) + _F(0.5))
            r = x - n * _F(0.693359375) - n * _F(-2.12194440e-4)
            p = _F(1.9875691500e-4)
            p = p * r + _F(1.3981999507e-3)
            p = p * r + _F(8.3334519073e-3)
            p = p * r + _F(4.1665795894e-2)
            p = p * r + _F(1.6666665459e-1)
            p = p * r + _F(5.0000001201e-1)
            p = p * r * r + r + _F(1.0)
            return p * _pow2i(x, np.int32(n))
        return impl
    if x == types.float64:
        def impl(x):
            if x < -708.0:
                x = -708.0
            n = np.floor(x * 1.4426950408889634074 + 0.5)
            r = x - n * 6.93145751953125e-1 - n * 1.42860682030941723212e-6
            rr = r * r
            p = r * ((1.26177193074810590878e-4 * rr
                      + 3.02994407707441961300e-2) * rr
                     + 9.99999999999999999910e-1)
            q = (((3.00198505138664455042e-6 * rr
                   + 2.52448340349684104192e-3) * rr
                  + 2.27265548208155028766e-1) * rr + 2.0)
            return (1.0 + 2.0 * p / (q - p)) * _pow2i(x, np.int64(n))
        return impl


@overload(log1p_unit)
def _log1p_unit(x):
    # log1p(x) = 2 atanh(s) with s = x / (2 + x) in [0, 1/3]: the odd series
    # 2 (s + s^3/3 + s^5/5 + ...) gains a factor s^2 <= 1/9 per term.
    if x == types.float32:
        def impl(x):
            s = x / (_F(2.0) + x)
            t = s * s
            p = _F(1.0 / 15.0)
            p = p * t + _F(1.0 / 13.0)
            p = p * t + _F(1.0 / 11.0)
            p = p * t + _F(1.0 / 9.0)
            p = p * t + _F(1.0 / 7.0)
            p = p * t + _F(1.0 / 5.0)
            p = p * t + _F(1.0 / 3.0)
            return _F(2.0) * s + _F(2.0) * s * t * p
        return impl
    if x == types.float64:
        def impl(x):
            s = x / (2.0 + x)
            t = s * s
            p = 1.0 / 35.0
            for k in range(16, 0, -1):
                p = p * t + 1.0 / (2 * k + 1)
            return 2.0 * s + 2.0 * s * t * p
        return impl


@overload(tanh)
def _tanh(x):
    # Cephes tanhf / tanh: an odd polynomial (float32) or rational form
    # (float64) below |x| = 0.625, where 1 - 2 e / (1 + e) with
    # e = exp(-2 |x|) would cancel; that form above (e <= 0.29). Both are
    # computed and one selected, so the loop vectorizes. NaN propagates.
    if x == types.float32:
        def impl(x):
            z = abs(x)
            s = x * x
            p = _F(-5.70498872745e-3)
            p = p * s + _F(2.06390887954e-2)
            p = p * s - _F(5.37397155531e-2)
            p = p * s + _F(1.33314422036e-1)
            p = p * s - _F(3.33332819422e-1)
            small = p * s * x + x
            e = exp_nonpositive(_F(-2.0) * z)
            large = _F(1.0) - _F(2.0) * e / (_F(1.0) + e)
            large = large if x >= _F(0.0) else -large
            return small if z < _F(0.625) else large
        return impl
    if x == types.float64:
        def impl(x):
            z = abs(x)
            s = x * x
            p = (-9.64399179425052238628e-1 * s
                 - 9.92877231001918586564e1) * s - 1.61468768441708447952e3
            q = ((s + 1.12811678491632931402e2) * s
                 + 2.23548839060100448583e3) * s + 4.84406305325125486048e3
            small = x + x * s * (p / q)
            e = exp_nonpositive(-2.0 * z)
            large = 1.0 - 2.0 * e / (1.0 + e)
            large = large if x >= 0.0 else -large
            return small if z < 0.625 else large
        return impl
