#!/usr/bin/env python3
"""Golden tensors of the SparseDiT tests (run from the repo root). Writes into tests/data/golden/:

  tiny_dense10.model.safetensors  random dense DiT (depth 10, D 64, 4 heads, patch 2, 12x12 latents = 6x6
                                  tokens, 10 classes + null row, learned sigma, eps), the make_golden.py way
  tiny_sparse.model.safetensors   that model converted (scripts/reference/sparsedit_reference.convert_dense)
                                  to the layout LAYOUT below, then merged_layer1/2 of both modules overwritten
                                  with random weights so the recovery path is not the identity; its config is
                                  the dense config plus the "sparse" layout key
  sparsedit.safetensors           inputs and outputs of both sparse models at grids 2..5 (uneven pooling
                                  bins on the 6x6 grid), a non-square 6x8 grid, torch's adaptive pool and
                                  nearest upsampling on their own, and density_grid schedules; the tensor list
                                  is in its "ditgen.golden" metadata

Before writing, it checks that the converted recovery block's merged tokens are exactly `full` (W1 = 0,
W2 = I) and that the mean form of pooling attention equals the paper's softmax(ones(N, N)) @ V form.
Deterministic: fixed seeds, CPU, float32, one thread; reruns give identical bytes.
"""
from __future__ import annotations

import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, HERE)
from dit_reference import load_model_file  # noqa: E402
from sparsedit_reference import (convert_dense, density_grid, load_sparse_model_file,  # noqa: E402
                                 sparse_config)
from convert_dit_checkpoint import save_safetensors, write_model_file  # noqa: E402
from make_golden import SAMPLER_DEFAULTS, WEIGHT_STD, build_random_model  # noqa: E402

GOLDEN = os.path.join("tests", "data", "golden")
DENSE_SPEC = dict(depth=10, hidden_size=32, num_heads=4, patch_size=2, mlp_ratio=2.0, in_channels=4,
                  input_size=[12, 12], num_classes=10, class_dropout_prob=0.1, learn_sigma=True,
                  objective="eps", image_space="latent", seed=1010)
LAYOUT = {"pooling_blocks": 1, "modules": 2, "groups": [1, 1, 1, 1], "top_blocks": 1, "min_grid": 2,
          "max_grid": 5}
MERGED_SEED = 1011
INPUT_SEED = 2026
GRIDS = [2, 3, 4, 5]


def class_names(name: str, n: int) -> list:
    return [f"{name}-class-{i}" for i in range(n)]


@torch.no_grad()
def self_check(converted, config: dict, g: torch.Generator) -> None:
    """W1 = 0, W2 = I make merged == full exactly; pooling attention == softmax(ones) @ V form."""
    D = config["hidden_size"]
    H, W = config["input_size"]
    x = torch.randn(2, config["in_channels"], H, W, generator=g)
    t = torch.tensor([5, 900], dtype=torch.int64)
    y = torch.tensor([0, config["num_classes"]], dtype=torch.int64)
    for S in GRIDS:
        trace = []
        converted(x, t, y, S, trace=trace)
        assert len(trace) == LAYOUT["modules"]
        for rec in trace:
            assert torch.equal(rec["merged"], rec["full"]), f"merged != full at S={S}"
    pa = converted.pooling_blocks[0].attn
    h = torch.randn(2, 36, D, generator=g)
    B, N, _ = h.shape
    heads, hd = config["num_heads"], D // config["num_heads"]
    v = pa.v(h).reshape(B, N, heads, hd).transpose(1, 2)  # [B, H, N, hd]
    ones = torch.ones(B, heads, N, N).softmax(dim=-1)  # the paper's all-ones attention matrix
    paper = pa.proj((ones @ v).transpose(1, 2).reshape(B, N, D))  # [B, N, D]
    ours = pa(h).expand(B, N, D)
    err = (paper - ours).abs().max().item()
    assert err <= 1e-6, f"pooling attention differs from the ones-softmax form by {err}"


def main() -> int:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(GOLDEN, exist_ok=True)

    # (a) dense model file, written and read back the make_golden.py way
    dense_path = os.path.join(GOLDEN, "tiny_dense10.model.safetensors")
    dense, dense_cfg = build_random_model(DENSE_SPEC)
    write_model_file(dense_path, dict(dense.state_dict()), dense_cfg, "tiny_dense10", SAMPLER_DEFAULTS["eps"],
                     {"untrained": True, "init": f"normal(0, {WEIGHT_STD}) every parameter, seed {DENSE_SPEC['seed']}",
                      "purpose": "ditgen golden tests (SparseDiT source model)"},
                     class_names("tiny_dense10", dense_cfg["num_classes"]))
    dense, cfg_rt, _ = load_model_file(dense_path)
    assert cfg_rt == dense_cfg

    # (b) converted model; checks; then the recovery merge layers overwritten
    converted = convert_dense(dense, dense_cfg, LAYOUT)
    self_check(converted, dense_cfg, torch.Generator().manual_seed(INPUT_SEED + 1))
    sparse = convert_dense(dense, dense_cfg, LAYOUT)
    g = torch.Generator().manual_seed(MERGED_SEED)
    with torch.no_grad():
        for m in sparse.sparse_modules:
            for lin in (m.token_recover.merged_layer1, m.token_recover.merged_layer2):
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * WEIGHT_STD)
                lin.bias.copy_(torch.randn(lin.bias.shape, generator=g) * WEIGHT_STD)
    sparse_cfg = sparse_config(dense_cfg, LAYOUT)
    sparse_path = os.path.join(GOLDEN, "tiny_sparse.model.safetensors")
    write_model_file(sparse_path, dict(sparse.state_dict()), sparse_cfg, "tiny_sparse", SAMPLER_DEFAULTS["eps"],
                     {"untrained": True, "init": ("tiny_dense10 converted by sparsedit_reference.convert_dense; "
                                                  f"merged_layer1/2 of every module normal(0, {WEIGHT_STD}) "
                                                  f"(weight then bias, layer1 then layer2), seed {MERGED_SEED}"),
                      "purpose": "ditgen golden tests (SparseDiT)"},
                     class_names("tiny_sparse", sparse_cfg["num_classes"]))
    loaded, cfg_rt, _ = load_sparse_model_file(sparse_path)
    assert cfg_rt == sparse_cfg
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), sparse.state_dict().values()))
    sparse = loaded

    # (c) golden tensors
    g = torch.Generator().manual_seed(INPUT_SEED)
    C = dense_cfg["in_channels"]
    t = {}
    t["x"] = torch.randn(2, C, 12, 12, generator=g)
    t["t"] = torch.tensor([10, 700], dtype=torch.int64)
    t["y"] = torch.tensor([3, dense_cfg["num_classes"]], dtype=torch.int64)
    with torch.no_grad():
        for S in GRIDS:
            t[f"out_converted_{S}"] = converted(t["x"], t["t"], t["y"], S)
            t[f"out_sparse_{S}"] = sparse(t["x"], t["t"], t["y"], S)
        t["x_rect"] = torch.randn(2, C, 12, 16, generator=g)
        t["out_sparse_rect_3"] = sparse(t["x_rect"], t["t"], t["y"], 3)
    t["pool_in"] = torch.randn(2, 5, 7, 3, generator=g)
    t["adaptive_pool_3"] = F.adaptive_avg_pool2d(t["pool_in"], (3, 3))
    t["nearest_up"] = F.interpolate(t["adaptive_pool_3"], size=(5, 7), mode="nearest")
    t["density_grids"] = torch.tensor([density_grid(k, 50, 6, 10) for k in range(50)], dtype=torch.int64)
    t["density_grids_20"] = torch.tensor([density_grid(k, 20, 2, 5) for k in range(20)], dtype=torch.int64)
    for k, v in t.items():
        assert v.dtype in (torch.float32, torch.int64), (k, v.dtype)
        assert torch.isfinite(v.float()).all(), k

    notes = {
        "x": "input [2,4,12,12] (6x6 token grid); t int64 timesteps; y class ids (10 = null)",
        "out_converted_S": "convert_dense(tiny_dense10) before the merged-layer overwrite (W1=0, W2=I), grid S, "
                           "input x; that model is not stored",
        "out_sparse_S": "tiny_sparse.model.safetensors (merged layers overwritten), grid S, input x",
        "x_rect": "input [2,4,12,16] (6x8 token grid), same t, y",
        "out_sparse_rect_3": "tiny_sparse, grid 3, input x_rect",
        "pool_in": "random [2,5,7,3]",
        "adaptive_pool_3": "F.adaptive_avg_pool2d(pool_in, (3, 3))",
        "nearest_up": "F.interpolate(adaptive_pool_3, size=(5, 7), mode='nearest')",
        "density_grids": "density_grid(k, 50, 6, 10) for k in 0..49 (hold 0.25, round half up)",
        "density_grids_20": "density_grid(k, 20, 2, 5) for k in 0..19 (hold 0.25, round half up)",
    }
    meta = {"model": "tiny_sparse.model.safetensors", "source_model": "tiny_dense10.model.safetensors",
            "layout": LAYOUT, "grids": GRIDS, "config": sparse_cfg, "notes": notes,
            "tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                        for k, v in t.items()}}
    out = os.path.join(GOLDEN, "sparsedit.safetensors")
    save_safetensors(out, {k: v.contiguous() for k, v in t.items()}, {"ditgen.golden": json.dumps(meta, indent=1)})

    total = 0
    for path in (dense_path, sparse_path, out):
        size = os.path.getsize(path)
        total += size
        print(f"{size:>9}  {path}")
    print(f"{total:>9}  total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
