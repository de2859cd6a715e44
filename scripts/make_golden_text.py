#!/usr/bin/env python3
"""Golden tensors of the text-conditioning tests (run from the repo root). Writes into tests/data/golden/:

  tiny_text_<kind>.model.safetensors   a random text model of each backbone (every parameter ~ N(0, 0.1),
                                       the text attention's zero initialisation included, so it matters):
                                         dit       dense DiT (depth 2, D 16, 2 heads, patch 2, 8x8 pixels, 3 channels)
                                         sparsedit 1 Poolingformer, 1 module [1, 1, 1, 1], 1 top block, grids 2..3
                                         ptdit     2 proxy-token blocks, 16x16 pixels, 4 x 4 windows
                                         diffussm  2 DiffuSSM blocks, patch 1, hourglass 2, state 8
  text.safetensors                     per kind a forward of two images: a prompt of 6 words and the empty
                                       prompt (the null condition); for "flexidit" the dense model made
                                       flexible (shared tokenizer, underlying patch 4) at patches 1, 2 and 4
                                       with the random patch-size embeddings stored beside the outputs; the
                                       text encoder's own output for the same ids.
The text encoder of every model: vocabulary of 12 words, 8 tokens, width 8, 2 layers, 2 heads.

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
from dit_reference import make_model  # noqa: E402
from sparsedit_reference import make_sparse_model  # noqa: E402
from ptdit_reference import make_ptdit  # noqa: E402
from diffussm_reference import make_diffussm  # noqa: E402
from flexidit_reference import FlexibleTokenizer  # noqa: E402
from text_reference import null_ids  # noqa: E402
from convert_dit_checkpoint import save_safetensors, write_model_file  # noqa: E402
from make_golden import SAMPLER_DEFAULTS, describe  # noqa: E402

GOLDEN = os.path.join("tests", "data", "golden")
STD = 0.1
TEXT = {"vocabulary": ["a", "red", "bag", "in", "the", "top", "left", "and", "blue", "sneaker", "bottom", "right"],
        "max_tokens": 8, "width": 8, "layers": 2, "heads": 2}
BASE = dict(architecture="dit", depth=2, hidden_size=16, num_heads=2, patch_size=2, mlp_ratio=1.0, in_channels=3,
            input_size=[8, 8], num_classes=0, class_dropout_prob=0.1, learn_sigma=True, objective="eps",
            diffusion_steps=1000, beta_schedule="linear", image_space="pixel", text=TEXT)
KINDS = {  # name: (config changes, builder, forward keyword arguments)
    "dit": ({}, make_model, {}),
    "sparsedit": ({"depth": 6, "sparse": {"pooling_blocks": 1, "modules": 1, "groups": [1, 1, 1, 1], "top_blocks": 1,
                                          "min_grid": 2, "max_grid": 3}}, make_sparse_model, {"grid": 3}),
    "ptdit": ({"input_size": [16, 16], "proxy": {"windows": 4, "proxy_split": 1}}, make_ptdit, {}),
    "diffussm": ({"patch_size": 1, "ssm": {"state_size": 8, "hourglass": 2, "kernels": "channel"}}, make_diffussm, {}),
}
SEED = 4040
PATCHES = [1, 2, 4]


@torch.no_grad()
def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(SEED)
    ids = null_ids(2, TEXT["max_tokens"])
    ids[0, 1:7] = torch.tensor([2, 3, 4, 5, 6, 7])  # "a red bag in the top"; row 1 stays the empty prompt
    out = {"ids": ids}
    for i, (kind, (changes, build, kwargs)) in enumerate(KINDS.items()):
        config = {**BASE, **changes}
        model = build(config).eval()
        randomize(model, SEED + 1 + i, STD)
        write_model_file(os.path.join(GOLDEN, f"tiny_text_{kind}.model.safetensors"), dict(model.state_dict()), config,
                         f"tiny_text_{kind}", SAMPLER_DEFAULTS["eps"],
                         {"untrained": True, "init": f"normal(0, {STD}) every parameter, seed {SEED + 1 + i}",
                          "purpose": "ditgen golden tests (text conditioning)"})
        size = config["input_size"]
        x = torch.randn(2, 3, size[0], size[1], generator=g)
        t = torch.tensor([10, 900], dtype=torch.int64)
        out.update({f"{kind}.x": x, f"{kind}.t": t, f"{kind}.out": model(x, t, ids, **kwargs)})
        if kind == "dit":
            (states, mask), pooled = model.text_encoder(ids)
            out.update({"encoder.states": states, "encoder.pooled": pooled})
            embeds = {p: torch.randn(config["hidden_size"], generator=g) * 0.05 for p in PATCHES}
            flex = FlexibleTokenizer(model, 4, embeds)
            for p in PATCHES:
                out[f"flexidit.out_{p}"] = flex.forward(x, t, ids, p)
            out["flexidit.patch_size_embed"] = torch.stack([embeds[p] for p in PATCHES])
    meta = {"kinds": {k: v[2] for k, v in KINDS.items()}, "flex": {"patch_sizes": PATCHES, "underlying_patch": 4},
            "tensors": describe(out)}
    save_safetensors(os.path.join(GOLDEN, "text.safetensors"), {k: v.contiguous() for k, v in out.items()},
                     {"ditgen.golden": json.dumps(meta, indent=1)})


if __name__ == "__main__":
    main()
