#!/usr/bin/env python3
"""Plain PyTorch reference of IntLoRA's linear layer (lib/ditgen/quant/intlora.h; docs/INTLORA.md; arXiv
2410.21759), written from the method's equations, and the writer of its golden tensors. Run from the repo root:

  python scripts/reference/intlora_reference.py   ->  tests/data/golden/intlora.safetensors

  weight [6, 16], bias [6], x [3, 16], gy [3, 6]   the float layer, an input and an output gradient
  laplace                 [6, 16]  Laplace(0, 0.5) drawn from seed 5 (uniform draw, inverse CDF)
  row_factors, R          [6], [6, 16]  VMC: (absmax W_row / minabs laplace_row)^1.5, R = factors * laplace
  {case}.base_values/.base_scales/.base_zero_points  W - R quantized (the case's bits, asymmetric, clip search)
  lora_A [2, 16], lora_B [6, 2]  a trained-looking adapter (alpha = rank: scale 1)
  {case}.weight           W' = the adapted weight,  {case}.y  y = fq(x) W'^T + b (dynamic per-token int8 x)
  {case}.grad_A/.grad_B   gradients of sum(y * gy) (straight-through rounding)
  {case}.merged_values/.merged_scales  the int8 merge (exact product rows kept, others requantized to 127)
cases: mul8, mul4 (IntLoRA-MUL at 8 and 4 bits), shift8 (IntLoRA-SHIFT at 8 bits).
Deterministic: fixed seeds, CPU, one thread, float32 except where the merge says double.
"""
from __future__ import annotations

import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from convert_dit_checkpoint import save_safetensors  # noqa: E402
from quant_reference import grid, integers, params, search  # noqa: E402

SEED = 5


def laplace(rows: int, cols: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u = torch.empty(rows, cols, dtype=torch.float64).uniform_(-0.5, 0.5, generator=g)
    return (-0.5 * u.sign() * torch.log((1 - 2 * u.abs()).clamp(min=1e-12))).float()


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return x.round().detach() + (x - x.detach())


def fake_quant_per_token(x: torch.Tensor) -> torch.Tensor:
    absmax = x.detach().abs().amax(1)
    scale = torch.where(absmax > 0, absmax / 127, torch.ones_like(absmax))[:, None]
    return round_ste(x / scale).clamp(-127, 127) * scale


def adapted(kind: str, bits: int, w_int, s, R, A, B):
    """W', U's (scale, zero) for MUL (searched on U with B = 0, where training starts) and U."""
    divisor = torch.where(w_int == 0, torch.ones_like(w_int), w_int)
    U = s[:, None] + (R + B @ A) / divisor
    if kind == "shift":
        k = round_ste(torch.log2(U.abs().clamp(min=1e-30)))
        return U.sign() * torch.exp2(k) * w_int, None, U
    u_params = search(s[:, None] + R / divisor, bits, False)
    su, zu = u_params
    qmin, qmax = grid(bits, False)
    u_int = (round_ste(U / su[:, None]) + zu[:, None]).clamp(qmin, qmax) - zu[:, None]
    return su[:, None] * u_int * w_int, u_params, U


def merge(kind: str, bits: int, w_int, U, u_params):
    w_int = w_int.double()
    if kind == "mul":
        su, zu = u_params
        qmin, qmax = grid(bits, False)
        u_int = ((U / su[:, None]).round() + zu[:, None]).clamp(qmin, qmax) - zu[:, None]
        product, row_scale = u_int.double() * w_int, su.double()
    else:
        k = torch.log2(U.abs().clamp(min=1e-30)).round().double()
        k_min = torch.maximum(k.amin(1), k.amax(1) - 24)
        product, row_scale = U.sign().double() * w_int * torch.exp2(k - k_min[:, None]), torch.exp2(k_min)
    absmax = product.abs().amax(1)
    factor = torch.where(absmax > 127, 127 / absmax, torch.ones_like(absmax))
    return (product * factor[:, None]).round().to(torch.int8), (row_scale / factor).float()


def main() -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(29)
    weight = torch.randn(6, 16, generator=g) * torch.linspace(0.05, 0.6, 6)[:, None]
    weight[3, 7] = 2.0
    bias = torch.randn(6, generator=g)
    x = torch.randn(3, 16, generator=g)
    gy = torch.randn(3, 6, generator=g)
    A0 = torch.randn(2, 16, generator=g) * 0.1
    B0 = torch.randn(6, 2, generator=g) * 0.05
    L = laplace(6, 16, SEED)
    factors = (weight.abs().amax(1) / torch.minimum(L.amax(1).abs(), L.amin(1).abs()).clamp(min=1e-12)).pow(1.5)
    R = factors[:, None] * L
    out = {"weight": weight, "bias": bias, "x": x, "gy": gy, "laplace": L, "row_factors": factors, "R": R,
           "lora_A": A0, "lora_B": B0}
    for case, kind, bits in (("mul8", "mul", 8), ("mul4", "mul", 4), ("shift8", "shift", 8)):
        scale, zero = search(weight - R, bits, False)
        values = integers(weight - R, scale, zero, bits, False)
        w_int = values - zero[:, None]
        A, B = A0.clone().requires_grad_(), B0.clone().requires_grad_()
        w_adapted, u_params, U = adapted(kind, bits, w_int, scale, R, A, B)
        y = torch.nn.functional.linear(fake_quant_per_token(x), w_adapted, bias)
        (y * gy).sum().backward()
        merged_values, merged_scales = merge(kind, bits, w_int, U.detach(), u_params)
        out.update({f"{case}.base_values": values.to(torch.int8), f"{case}.base_scales": scale,
                    f"{case}.base_zero_points": zero.to(torch.int32), f"{case}.weight": w_adapted.detach(),
                    f"{case}.y": y.detach(), f"{case}.grad_A": A.grad, f"{case}.grad_B": B.grad,
                    f"{case}.merged_values": merged_values, f"{case}.merged_scales": merged_scales})

    path = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "data", "golden", "intlora.safetensors")
    save_safetensors(path, {k: v.contiguous() for k, v in out.items()})
    print("wrote", path)


if __name__ == "__main__":
    main()
