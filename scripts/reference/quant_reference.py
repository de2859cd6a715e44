#!/usr/bin/env python3
"""Plain PyTorch reference of lib/ditgen/quant (docs/QUANT.md; the IntLoRA paper, arXiv 2410.21759),
written from the spec,
and the writer of its golden tensors. Run from the repo root:

  python scripts/reference/quant_reference.py   ->  tests/data/golden/quant.safetensors

  weight                    [8, 40] float, rows of different ranges, two with an outlier
  w{bits}{a|s}.values       int8 [8, 40], .scales float [8], .zero_points int32 [8]: per-channel quantization
                            with the L_2.4 clip search (a = asymmetric, s = symmetric)
  x                         [6, 40] float activations
  x.values, x.scales        dynamic per-token int8 quantization of x
  batches                   [3, 6, 40]: calibration batches of growing range
  static{a|s}.scale, .zero_point   [1] each: the static per-tensor quantizer calibrated on them (MSE search)
  bias, linear              [8], [6, 8]: the dynamic int8 linear of x with w8a and bias, in exact integers

Integer grids: asymmetric -2^(b-1)..2^(b-1)-1, symmetric -(2^(b-1)-1)..2^(b-1)-1; float32 throughout, as the
C++ code computes. Deterministic: fixed seed, CPU, one thread.
"""
from __future__ import annotations

import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from convert_dit_checkpoint import save_safetensors  # noqa: E402

SHRINKS = [1.0 - 0.01 * i for i in range(80)]
EXPONENT = 2.4


def grid(bits: int, symmetric: bool) -> tuple[int, int]:
    half = 2 ** (bits - 1)
    return (-(half - 1), half - 1) if symmetric else (-half, half - 1)


def params(lo: torch.Tensor, hi: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row scale and integer-valued zero point of [lo, hi], widened to contain 0."""
    qmin, qmax = grid(bits, symmetric)
    lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    if symmetric:
        absmax = torch.maximum(lo.abs(), hi)
        scale = torch.where(absmax > 0, absmax / qmax, torch.ones_like(absmax))
        return scale, torch.zeros_like(scale)
    span = hi - lo
    scale = torch.where(span > 0, span / (qmax - qmin), torch.ones_like(span))
    return scale, (qmin - (lo / scale).round()).clamp(qmin, qmax)


def integers(x, scale, zero, bits, symmetric):
    qmin, qmax = grid(bits, symmetric)
    return ((x / scale[:, None]).round() + zero[:, None]).clamp(qmin, qmax)


def search(x: torch.Tensor, bits: int, symmetric: bool, lo=None, hi=None):
    """The clip search over rows of x: the shrink of [lo, hi] with the lowest sum |x - x_hat|^2.4, first wins."""
    lo = x.min(1).values if lo is None else lo
    hi = x.max(1).values if hi is None else hi
    best = None
    for shrink in SHRINKS:
        scale, zero = params(lo * shrink, hi * shrink, bits, symmetric)
        x_hat = (integers(x, scale, zero, bits, symmetric) - zero[:, None]) * scale[:, None]
        error = (x - x_hat).abs().pow(EXPONENT).sum(1)
        if best is None:
            best = [scale, zero, error]
            continue
        better = error < best[2]
        best = [torch.where(better, scale, best[0]), torch.where(better, zero, best[1]), torch.where(better, error, best[2])]
    return best[0], best[1]


def main() -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(17)
    weight = torch.randn(8, 40, generator=g) * torch.linspace(0.05, 2.0, 8)[:, None]
    weight[2, 5] = 6.0
    weight[5, 0] = -9.0
    out = {"weight": weight}
    for bits in (4, 8):
        for symmetric in (False, True):
            key = f"w{bits}{'s' if symmetric else 'a'}"
            scale, zero = search(weight, bits, symmetric)
            out[f"{key}.values"] = integers(weight, scale, zero, bits, symmetric).to(torch.int8)
            out[f"{key}.scales"] = scale
            out[f"{key}.zero_points"] = zero.to(torch.int32)

    x = torch.randn(6, 40, generator=g) * (1 + 3 * torch.rand(1, 40, generator=g))
    absmax = x.abs().amax(1)
    x_scale, x_zero = params(-absmax, absmax, 8, True)
    x_values = integers(x, x_scale, x_zero, 8, True)
    out.update({"x": x, "x.values": x_values.to(torch.int8), "x.scales": x_scale})

    batches = torch.stack([torch.randn(6, 40, generator=g) * i + 0.5 * i for i in (1, 2, 3)])
    out["batches"] = batches
    for symmetric in (False, True):
        flat = batches.reshape(1, -1)
        scale, zero = search(flat, 8, symmetric, flat.min(1).values, flat.max(1).values)
        key = f"static{'s' if symmetric else 'a'}"
        out[f"{key}.scale"], out[f"{key}.zero_point"] = scale, zero.to(torch.int32)

    bias = torch.randn(8, generator=g)
    w_values, w_scale, w_zero = out["w8a.values"], out["w8a.scales"], out["w8a.zero_points"]
    exact = x_values.to(torch.int64) @ (w_values.to(torch.int64) - w_zero[:, None].to(torch.int64)).T  # [6, 8]
    out["bias"] = bias
    out["linear"] = exact.to(torch.float32) * (x_scale[:, None] * w_scale[None, :]) + bias

    path = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "data", "golden", "quant.safetensors")
    save_safetensors(path, {k: v.contiguous() for k, v in out.items()})
    print("wrote", path)


if __name__ == "__main__":
    main()
