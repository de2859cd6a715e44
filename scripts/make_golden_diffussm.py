#!/usr/bin/env python3
"""Golden tensors of the DiffuSSM tests (run from the repo root). Writes into tests/data/golden/:

  diffussm.safetensors             run by scripts/reference/diffussm_reference.py (Toeplitz convolution):
                                     s4d_channel / s4d_shared  an S4D (6 channels, state 8; a kernel per
                                                               channel / one shared) on u [2, 50, 6]
                                     block                     a block (D 16, hourglass 2, gate 24, state 8)
                                                               on x [2, 36, 16], c [2, 16]
                                   and a forward of the tiny model below at 8x8 and 6x10 inputs; the tensor
                                   list is in its "ditgen.golden" metadata
  tiny_diffussm.model.safetensors  random DiffuSSM (depth 2, D 32, patch 1, 8x8 latents, state 8, hourglass 2)

S4D parameters are drawn in their initialisation's ranges (dt log-uniform in [0.01, 1], A = -exp(~log 0.5)
+ i pi n with jitter), so the kernels have long and short memories; every other parameter ~ N(0, std).
Deterministic: fixed seeds, CPU, float32, one thread; reruns give identical bytes.
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Optional

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, HERE)
from diffussm_reference import S4D, DiffuSSMBlock, make_diffussm  # noqa: E402
from golden_common import randomize  # noqa: E402
from convert_dit_checkpoint import save_safetensors, write_model_file  # noqa: E402
from make_golden import SAMPLER_DEFAULTS, WEIGHT_STD, describe, full_config  # noqa: E402

GOLDEN = os.path.join("tests", "data", "golden")
S4D_SEED, BLOCK_SEED, INPUT_SEED, MODEL_SEED = 4040, 4041, 4042, 4043
MODEL_SPEC = dict(depth=2, hidden_size=32, num_heads=4, patch_size=1, mlp_ratio=1.5, in_channels=4,
                  input_size=[8, 8], num_classes=10, class_dropout_prob=0.1, learn_sigma=True,
                  objective="eps", image_space="latent")


def s4d_ranges(name: str, p: torch.Tensor, g: torch.Generator) -> Optional[torch.Tensor]:
    """randomize's rule for S4D parameters: draws in their initialisation's ranges (None: the N(0, std) draw)."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "log_dt":
        return torch.rand(p.shape, generator=g) * math.log(100) + math.log(0.01)
    if leaf == "log_A_real":
        return math.log(0.5) + 0.3 * torch.randn(p.shape, generator=g)
    if leaf == "A_imag":
        return math.pi * torch.arange(p.shape[1]).float() + 0.1 * torch.randn(p.shape, generator=g)
    if leaf in ("C", "D"):
        return torch.randn(p.shape, generator=g) * math.sqrt(0.5)
    return None


@torch.no_grad()
def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(GOLDEN, exist_ok=True)
    out = {}
    g = torch.Generator().manual_seed(INPUT_SEED)
    for name, shared in (("s4d_channel", False), ("s4d_shared", True)):
        ssm = S4D(6, 8, shared)
        randomize(ssm, S4D_SEED, 0.0, s4d_ranges)
        for k, v in ssm.state_dict().items():
            out[f"{name}.{k}"] = v.clone()
        out[f"{name}.u"] = torch.randn(2, 50, 6, generator=g)
        out[f"{name}.y"] = ssm(out[f"{name}.u"])
    block = DiffuSSMBlock(16, 2, 24, 8, False)
    randomize(block, BLOCK_SEED, 0.2, s4d_ranges)
    for k, v in block.state_dict().items():
        out["block." + k] = v.clone()
    out["block.x"] = torch.randn(2, 36, 16, generator=g)
    out["block.c"] = torch.randn(2, 16, generator=g)
    out["block.out"] = block(out["block.x"], out["block.c"])

    config = full_config(MODEL_SPEC)
    config["ssm"] = {"state_size": 8, "hourglass": 2, "kernels": "channel"}
    model = make_diffussm(config).eval()
    randomize(model, MODEL_SEED, WEIGHT_STD * 4, s4d_ranges)
    path = os.path.join(GOLDEN, "tiny_diffussm.model.safetensors")
    write_model_file(path, dict(model.state_dict()), config, "tiny_diffussm", SAMPLER_DEFAULTS["eps"],
                     {"untrained": True, "init": f"normal(0, {WEIGHT_STD * 4}); S4D in its initialisation ranges, "
                      f"seed {MODEL_SEED}", "purpose": "ditgen golden tests (DiffuSSM)"},
                     [f"tiny_diffussm-class-{i}" for i in range(10)])
    for name, (h, w) in (("model8", (8, 8)), ("model6x10", (6, 10))):
        out[f"{name}.x"] = torch.randn(2, 4, h, w, generator=g)
        out[f"{name}.t"] = torch.tensor([10, 900], dtype=torch.int64)
        out[f"{name}.y"] = torch.tensor([3, 10], dtype=torch.int64)
        out[f"{name}.out"] = model(out[f"{name}.x"], out[f"{name}.t"], out[f"{name}.y"])
    meta = {"s4d": {"channels": 6, "state_size": 8}, "block": {"hidden_size": 16, "hourglass": 2, "gate_hidden": 24,
            "state_size": 8}, "tensors": describe(out)}
    save_safetensors(os.path.join(GOLDEN, "diffussm.safetensors"), out, {"ditgen.golden": json.dumps(meta, indent=1)})


if __name__ == "__main__":
    main()
