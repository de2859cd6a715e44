"""FlexiDiT reference (our own PyTorch, docs/FLEXIDIT.md): PI-resize of the tokenizer and the forward of a
dense reference DiT (dit_reference.DiT) run at another patch size with a shared flexible tokenizer.

The resize matrices come from torch's F.interpolate (bilinear, align_corners=False, no antialias) applied
to one-hot patches, independently of the C++ construction, so the golden test checks both.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dit_reference import DiT, modulate, sincos_1d


def resize_matrix(src: int, dst: int) -> torch.Tensor:
    """[dst*dst, src*src] float64: column k is the bilinear resize of the k-th one-hot src x src patch."""
    basis = torch.eye(src * src, dtype=torch.float64).reshape(src * src, 1, src, src)
    out = F.interpolate(basis, size=(dst, dst), mode="bilinear", align_corners=False, antialias=False)
    return out.reshape(src * src, dst * dst).T.contiguous()


def embed_projection(p: int, a: int) -> torch.Tensor:
    """Q_embed(p) = pinv(B_{p<-a}^T): [p*p, a*a]."""
    return torch.linalg.pinv(resize_matrix(a, p).T)


def deembed_projection(p: int, a: int) -> torch.Tensor:
    """pinv(B_{a<-p}): [p*p, a*a], acting on de-embedding rows."""
    return torch.linalg.pinv(resize_matrix(p, a))


def kernel_apply(w: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """[D, C, s, s] conv kernel, m [q*q, s*s] -> [D, C, q, q] (per input channel)."""
    D, C = w.shape[:2]
    q = int(round(m.shape[0] ** 0.5))
    return torch.einsum("ps,dcs->dcp", m, w.reshape(D, C, -1)).reshape(D, C, q, q)


def rows_apply(w: torch.Tensor, m: torch.Tensor, c: int) -> torch.Tensor:
    """De-embedding rows ordered (pixel, channel): [s*s*c, ...] -> [q*q*c, ...]."""
    rest = w.shape[1:]
    g = w.reshape(m.shape[1], c, *rest)
    return torch.einsum("ps,sc...->pc...", m, g).reshape(m.shape[0] * c, *rest)


def pos_embed_2d_step(hidden: int, gh: int, gw: int, step: float) -> torch.Tensor:
    """Sin-cos positions of a coarser (step > 1) or finer grid at its patch centres in native-grid units."""
    off = (step - 1) / 2
    rows, cols = np.meshgrid(np.arange(gh, dtype=np.float64) * step + off,
                             np.arange(gw, dtype=np.float64) * step + off, indexing="ij")
    emb = np.concatenate([sincos_1d(hidden // 2, cols), sincos_1d(hidden // 2, rows)], axis=1)
    return torch.from_numpy(emb).float().unsqueeze(0)


class FlexibleTokenizer:
    """Underlying a x a weights (float64) derived from a fixed-patch model, projected to any patch."""

    def __init__(self, model: DiT, underlying: int, patch_embed: dict[int, torch.Tensor]):
        q, a = model.patch_size, underlying
        self.model, self.a, self.patch_embed = model, a, patch_embed
        w = model.x_embedder.proj.weight.detach().double()
        self.kernel = kernel_apply(w, torch.linalg.pinv(embed_projection(q, a)))
        self.embed_bias = model.x_embedder.proj.bias.detach()
        de = torch.linalg.pinv(deembed_projection(q, a))
        c = model.out_channels
        self.de_w = rows_apply(model.final_layer.linear.weight.detach().double(), de, c)
        self.de_b = rows_apply(model.final_layer.linear.bias.detach().double(), de, c)

    def weights(self, p: int):
        c = self.model.out_channels
        qe, qd = embed_projection(p, self.a), deembed_projection(p, self.a)
        return (kernel_apply(self.kernel, qe).float(), self.embed_bias,
                rows_apply(self.de_w, qd, c).float(), rows_apply(self.de_b, qd, c).float())

    @torch.no_grad()
    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, p: int) -> torch.Tensor:
        m = self.model
        H, W = x.shape[-2:]
        gh, gw = H // p, W // p
        ew, eb, dw, db = self.weights(p)
        h = F.conv2d(x, ew, eb, stride=p).flatten(2).transpose(1, 2)
        h = h + pos_embed_2d_step(m.hidden_size, gh, gw, p / m.patch_size) + self.patch_embed[p]
        c, text = m.condition(t, y)
        for block in m.blocks:
            h = block(h, c, text)
        fl = m.final_layer
        shift, scale = fl.adaLN_modulation(c).chunk(2, dim=1)
        h = F.linear(modulate(fl.norm_final(h), shift, scale), dw, db)
        co = m.out_channels
        h = h.reshape(h.shape[0], gh, gw, p, p, co)
        return torch.einsum("nhwpqc->nchpwq", h).reshape(h.shape[0], co, gh * p, gw * p)
