#!/usr/bin/env python3
"""Golden tensors of the FlexiDiT tests: tests/data/golden/flexidit.safetensors (run from the repo root
after scripts/make_golden.py, whose tiny_p2 model it converts).

Holds torch's bilinear resize matrices and the PI-resize projections for underlying patch 4, and the
outputs of tiny_p2 (patch 2, 8x8 latents) made flexible (shared tokenizer, underlying patch 4) at patch
sizes 1, 2, 4 and 8 with the random patch-size embeddings stored beside them.
"""
from __future__ import annotations

import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, HERE)
from dit_reference import load_model_file  # noqa: E402
from flexidit_reference import FlexibleTokenizer, deembed_projection, embed_projection, resize_matrix  # noqa: E402
from convert_dit_checkpoint import save_safetensors  # noqa: E402

GOLDEN = os.path.join("tests", "data", "golden")
PATCHES = [1, 2, 4, 8]


def main() -> int:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model, config, _ = load_model_file(os.path.join(GOLDEN, "tiny_p2.model.safetensors"))
    t = {}
    for src, dst in [(4, 2), (2, 4), (4, 1), (4, 8), (3, 5)]:
        t[f"resize_{src}_{dst}"] = resize_matrix(src, dst)
    for p in PATCHES:
        t[f"embed_projection_{p}"] = embed_projection(p, 4)
        t[f"deembed_projection_{p}"] = deembed_projection(p, 4)
    g = torch.Generator().manual_seed(2024)
    D = config["hidden_size"]
    embeds = {p: torch.randn(D, generator=g) * 0.05 for p in PATCHES}
    flex = FlexibleTokenizer(model, 4, embeds)
    x = torch.randn(2, config["in_channels"], 8, 8, generator=g)
    tt = torch.tensor([10, 700], dtype=torch.int64)
    y = torch.tensor([3, config["num_classes"]], dtype=torch.int64)
    t.update(x=x, t=tt, y=y)
    for p in PATCHES:
        t[f"patch_embed_{p}"] = embeds[p]
        t[f"out_{p}"] = flex.forward(x, tt, y, p)
    t["patch_size_embed"] = torch.stack([embeds[p] for p in PATCHES])
    meta = {"model": "tiny_p2.model.safetensors", "flex": {"patch_sizes": PATCHES, "underlying_patch": 4,
                                                            "mode": "shared"},
            "patch_size_embed": "rows in patch_sizes order", "tensors": {k: list(v.shape) for k, v in t.items()}}
    save_safetensors(os.path.join(GOLDEN, "flexidit.safetensors"), {k: v.contiguous() for k, v in t.items()},
                     {"ditgen.golden": json.dumps(meta, indent=1)})
    print(os.path.getsize(os.path.join(GOLDEN, "flexidit.safetensors")), "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
