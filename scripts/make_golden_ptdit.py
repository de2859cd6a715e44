#!/usr/bin/env python3
"""Golden tensors of the PT-DiT tests (run from the repo root). Writes into tests/data/golden/:

  ptdit.safetensors             one proxy-token block (D 32, 4 heads, MLP ratio 2, random weights
                                "block.*") run by scripts/reference/ptdit_reference.py in raster order on
                                  video   grid 4x4x8, windows 2x2x4 (shift on every axis), one proxy a window
                                  video2  the same grid with proxy_split 2 (4 proxies a window)
                                  image   grid 1x6x6, windows 1x3x3 (odd windows: shift 1)
                                  nogiim  the image case with proxy_cross.proj zeroed, computed by the
                                          reference *without* the proxy path (what a fresh block starts as)
                                and a forward of the tiny model below at 16x16 and 24x24 inputs; the tensor
                                list is in its "ditgen.golden" metadata
  tiny_ptdit.model.safetensors  random PT-DiT (depth 2, D 32, 4 heads, patch 2, 16x16 latents, 4x4 windows)

Deterministic: fixed seeds, CPU, float32, one thread; reruns give identical bytes.
"""
from __future__ import annotations

import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, HERE)
from golden_common import randomize  # noqa: E402
from ptdit_reference import ProxyTokenBlock, make_ptdit  # noqa: E402
from convert_dit_checkpoint import save_safetensors, write_model_file  # noqa: E402
from make_golden import SAMPLER_DEFAULTS, WEIGHT_STD, describe, full_config  # noqa: E402

GOLDEN = os.path.join("tests", "data", "golden")
D, HEADS, MLP_RATIO = 32, 4, 2.0
BLOCK_SEED, INPUT_SEED, MODEL_SEED = 3030, 3031, 3032
CASES = {  # name: (grid, window, proxy_split)
    "video": ((4, 4, 8), (2, 2, 4), 1),
    "video2": ((4, 4, 8), (2, 2, 4), 2),
    "image": ((1, 6, 6), (1, 3, 3), 1),
}
MODEL_SPEC = dict(depth=2, hidden_size=D, num_heads=HEADS, patch_size=2, mlp_ratio=MLP_RATIO, in_channels=4,
                  input_size=[16, 16], num_classes=10, class_dropout_prob=0.1, learn_sigma=True,
                  objective="eps", image_space="latent")


@torch.no_grad()
def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(GOLDEN, exist_ok=True)
    out = {}
    block = ProxyTokenBlock(D, HEADS, MLP_RATIO).eval()
    randomize(block, BLOCK_SEED, 0.2)
    for k, v in block.state_dict().items():
        out["block." + k] = v.clone()
    g = torch.Generator().manual_seed(INPUT_SEED)
    for name, (grid, window, split) in CASES.items():
        N = grid[0] * grid[1] * grid[2]
        x = torch.randn(2, N, D, generator=g)
        shared = torch.randn(2, 9 * D, generator=g) * 0.5
        out[f"{name}.x"], out[f"{name}.mod"] = x, shared
        out[f"{name}.out"] = block(x, shared, grid, window, split)
    # A fresh block's zero proxy projection: the block is its window path alone.
    grid, window, _ = CASES["image"]
    x, shared = out["image.x"], out["image.mod"]
    zeroed = ProxyTokenBlock(D, HEADS, MLP_RATIO).eval()
    zeroed.load_state_dict(block.state_dict())
    zeroed.proxy_cross.proj.weight.zero_()
    zeroed.proxy_cross.proj.bias.zero_()
    out["nogiim.out"] = window_path_only(block, x, shared, grid, window)
    assert torch.allclose(zeroed(x, shared, grid, window), out["nogiim.out"], atol=1e-6)

    # The tiny model file and its forwards at two sizes (two window layouts).
    config = full_config(MODEL_SPEC)
    config["proxy"] = {"windows": 4, "proxy_split": 1}
    model = make_ptdit(config).eval()
    randomize(model, MODEL_SEED, WEIGHT_STD * 4)
    path = os.path.join(GOLDEN, "tiny_ptdit.model.safetensors")
    write_model_file(path, dict(model.state_dict()), config, "tiny_ptdit", SAMPLER_DEFAULTS["eps"],
                     {"untrained": True, "init": f"normal(0, {WEIGHT_STD * 4}) every parameter, seed {MODEL_SEED}",
                      "purpose": "ditgen golden tests (PT-DiT)"}, [f"tiny_ptdit-class-{i}" for i in range(10)])
    for size in (16, 24):
        out[f"model{size}.x"] = torch.randn(2, 4, size, size, generator=g)
        out[f"model{size}.t"] = torch.tensor([10, 900], dtype=torch.int64)
        out[f"model{size}.y"] = torch.tensor([3, 10], dtype=torch.int64)
        out[f"model{size}.out"] = model(out[f"model{size}.x"], out[f"model{size}.t"], out[f"model{size}.y"])
    meta = {"cases": {k: {"grid": v[0], "window": v[1], "proxy_split": v[2]} for k, v in CASES.items()},
            "block": {"hidden_size": D, "num_heads": HEADS, "mlp_ratio": MLP_RATIO}, "tensors": describe(out)}
    save_safetensors(os.path.join(GOLDEN, "ptdit.safetensors"), out, {"ditgen.golden": json.dumps(meta, indent=1)})


def window_path_only(block: ProxyTokenBlock, x, shared, grid, window) -> torch.Tensor:
    """The reference block's forward with the proxies' contribution left out (zero instead of CA)."""
    real = block.proxy_cross
    class Skip(torch.nn.Module):
        def forward(self, q, kv):
            return torch.zeros_like(q)
    block.proxy_cross = Skip()
    try:
        return block(x, shared, grid, window, 1)
    finally:
        block.proxy_cross = real


if __name__ == "__main__":
    main()
