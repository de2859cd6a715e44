#!/usr/bin/env python3
"""Golden tensors of the video-backbone tests (run from the repo root, after make_golden_text.py). Writes
tests/data/golden/video.safetensors: forwards of our PyTorch reference (scripts/reference/video_reference.py)
for the text tests' random models (tiny_text_dit, tiny_text_ptdit: the weights of an image model are those of
a video model, and this is how a text-to-image model starts a video one) run as video models:
  dit.f4     the dense DiT (full spatio-temporal attention) on two clips of 4 frames of 3 x 8 x 8 pixels
             (patch 2: 4 x 4 x 4 = 64 tokens a clip)
  ptdit.f4   the PT-DiT with 2 x 2 windows a frame (of 2 x 2 tokens) spanning 2 frames, on clips of 4 frames
             of 8 x 8 pixels: the shifted windows move by one frame and one token each way
  ptdit.f2   the same PT-DiT on 2-frame clips: one window in time, no temporal shift
The clips are not stored: both sides draw them with torch.randn from the generator seeded CLIP_SEED (LibTorch
and PyTorch draw the same numbers), two prompts each (6 words, and the empty prompt).

Deterministic: fixed seeds, CPU, float32, one thread; reruns give identical bytes.
"""
from __future__ import annotations

import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, HERE)
from dit_reference import make_model  # noqa: E402
from ptdit_reference import make_ptdit  # noqa: E402
from text_reference import null_ids  # noqa: E402
from video_reference import dense_video_forward, ptdit_video_forward  # noqa: E402
from convert_dit_checkpoint import save_safetensors  # noqa: E402
from make_golden import describe  # noqa: E402
from make_golden_text import TEXT  # noqa: E402

GOLDEN = os.path.join("tests", "data", "golden")
CLIP_SEED = 5050
RUNS = {  # name: (model, video config changes, frames, builder, forward)
    "dit.f4": ("dit", {"input_frames": 4}, 4, make_model, dense_video_forward),
    "ptdit.f4": ("ptdit", {"input_frames": 4, "proxy": {"windows": 2, "proxy_split": 1, "window_frames": 2}}, 4,
                 make_ptdit, lambda m, x, t, y: ptdit_video_forward(m, x, t, y, 2)),
    "ptdit.f2": ("ptdit", {"input_frames": 4, "proxy": {"windows": 2, "proxy_split": 1, "window_frames": 2}}, 2,
                 make_ptdit, lambda m, x, t, y: ptdit_video_forward(m, x, t, y, 2)),
}


@torch.no_grad()
def main() -> None:
    torch.set_num_threads(1)
    ids = null_ids(2, TEXT["max_tokens"])
    ids[0, 1:7] = torch.tensor([2, 3, 4, 5, 6, 7])  # "a red bag in the top"; row 1 stays the empty prompt
    t = torch.tensor([10, 900], dtype=torch.int64)
    out = {}
    for name, (kind, changes, frames, build, forward) in RUNS.items():
        path = os.path.join(GOLDEN, f"tiny_text_{kind}.model.safetensors")
        with safe_open(path, framework="pt") as f:
            config = json.loads(f.metadata()["ditgen.config"])
        model = build({**config, **changes}).eval()
        model.load_state_dict(load_file(path), strict=True)
        x = torch.randn(2, 3, frames, 8, 8, generator=torch.Generator().manual_seed(CLIP_SEED))
        out[f"{name}.out"] = forward(model, x, t, ids)
    meta = {"clip_seed": CLIP_SEED, "ids": ids.tolist(), "t": t.tolist(), "tensors": describe(out)}
    save_safetensors(os.path.join(GOLDEN, "video.safetensors"), {k: v.contiguous() for k, v in out.items()},
                     {"ditgen.golden": json.dumps(meta, indent=1)})


if __name__ == "__main__":
    main()
