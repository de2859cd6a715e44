"""Our PyTorch reference of ditgen's video backbones (docs/VIDEO.md), written from the design, plainly:

  clip x [B, C, F, H, W] -> each frame patched by the image tokenizer -> tokens in (frame, row, column) order,
  each token + its 2D image position + its frame's temporal position, where the temporal position of frame f
  is sincos_1d(D, f) - sincos_1d(D, 0) (frame 0 adds nothing, so frame 0 of a clip sees an image's positions)
  times the model's learned temporal-position gate [D] (all ones here, as a video model starts it)
  -> the image model's blocks over all F * h * w tokens:
       dense DiT: full spatio-temporal self-attention (every token attends to every token of the clip);
       PT-DiT:    proxy-token blocks on the (F, h, w) grid with windows of (p_t, h / windows, w / windows)
  -> the image head per token -> [B, C_out, F, H, W].
"""
from __future__ import annotations

import numpy as np
import torch

from dit_reference import DiT, sincos_1d
from ptdit_reference import PTDiT


def temporal_pos(hidden: int, frames: int) -> torch.Tensor:
    """[F, D] float32: sincos_1d of frames 0..F-1 minus frame 0's."""
    emb = sincos_1d(hidden, np.arange(frames, dtype=np.float64))
    return torch.from_numpy(emb - emb[:1]).float()


def embed_clip(model: DiT, x: torch.Tensor) -> torch.Tensor:
    """x [B, C, F, H, W] -> tokens [B, F * h * w, D] with image and temporal positions."""
    B, C, Fr, H, W = x.shape
    frames = x.permute(0, 2, 1, 3, 4).reshape(B * Fr, C, H, W)
    tokens = model.embed(frames)                                       # [B*F, h*w, D], image positions added
    tokens = tokens.reshape(B, Fr, -1, model.hidden_size)
    tokens = tokens + temporal_pos(model.hidden_size, Fr)[None, :, None, :]
    return tokens.reshape(B, -1, model.hidden_size)


def head_clip(model: DiT, h: torch.Tensor, c: torch.Tensor, B: int, Fr: int, gh: int, gw: int) -> torch.Tensor:
    """Tokens [B, F * h * w, D] -> [B, C_out, F, H, W]."""
    out = model.final_layer(h, c).reshape(B * Fr, gh * gw, -1)
    images = model.unpatchify(out, gh, gw)                             # [B*F, C_out, H, W]
    return images.reshape(B, Fr, *images.shape[1:]).permute(0, 2, 1, 3, 4)


def dense_video_forward(model: DiT, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    B, _, Fr, H, W = x.shape
    gh, gw = H // model.patch_size, W // model.patch_size
    h = embed_clip(model, x)
    c, text = model.condition(t, y)
    for block in model.blocks:
        h = block(h, c, text)
    return head_clip(model, h, c, B, Fr, gh, gw)


def ptdit_video_forward(model: PTDiT, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                        window_frames: int) -> torch.Tensor:
    B, _, Fr, H, W = x.shape
    gh, gw = H // model.patch_size, W // model.patch_size
    h = embed_clip(model, x)
    c, text = model.condition(t, y)
    shared = model.adaLN_modulation(c)
    pt = window_frames if Fr > 1 else 1
    grid, window = (Fr, gh, gw), (pt, gh // model.windows, gw // model.windows)
    for block in model.proxy_blocks:
        h = block(h, shared, grid, window, model.proxy_split, text)
    return head_clip(model, h, c, B, Fr, gh, gw)
