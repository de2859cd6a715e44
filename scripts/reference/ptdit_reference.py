"""Our PyTorch reference of PT-DiT's proxy-token block (docs/PTDIT.md), written from the paper's description
and its released block (arXiv 2409.04005), in raster token order with explicit windows (the plain way: partition,
attend, merge; roll, partition, masked attention, merge, roll back), so it checks the C++ engine's
window-major stream and gathers.

Block (class-conditional, adaLN-single):
  p  = average pool of the tokens over proxy windows         [B, M, D]
  p  = p + SA(LN(p))
  x  = x + CA(Q = LN(x), KV = LN(p))                           (proj zero-initialised)
  x  = x + g1 * WSA(modulate(LN(x), s1, c1))                  windows of (p_t, p_h, p_w)
  x  = x + g2 * SWSA(modulate(LN(x), s2, c2))                 Swin shift and mask
  x  = x + g3 * MLP(modulate(LN(x), s3, c3))
with (s1, c1, g1, ..., g3) = chunks of adaLN(c) + the block's scale_shift_table [9, D].
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from dit_reference import DiT, Mlp, modulate
from sparsedit_reference import CrossAttention
from text_reference import Text, add_text, text_cross_or_none


def layer_norm(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), eps=1e-6)


def shift_of(grid: Sequence[int], window: Sequence[int]) -> Tuple[int, int, int]:
    """Half a window on each axis the window does not cover whole."""
    return tuple(w // 2 if w < g else 0 for g, w in zip(grid, window))


def partition(x: torch.Tensor, window: Sequence[int]) -> torch.Tensor:
    """[B, F, H, W, D] -> [B * P, n, D]: windows in (f, h, w) order, tokens (t, y, x) inside."""
    B, Fr, H, W, D = x.shape
    pt, ph, pw = window
    x = x.reshape(B, Fr // pt, pt, H // ph, ph, W // pw, pw, D)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, pt * ph * pw, D)


def merge(w: torch.Tensor, B: int, grid: Sequence[int], window: Sequence[int]) -> torch.Tensor:
    """[B * P, n, D] -> [B, F, H, W, D]."""
    Fr, H, W = grid
    pt, ph, pw = window
    D = w.shape[-1]
    x = w.reshape(B, Fr // pt, H // ph, W // pw, pt, ph, pw, D)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(B, Fr, H, W, D)


def swin_mask(grid: Sequence[int], window: Sequence[int]) -> torch.Tensor:
    """Swin's construction: label the rolled grid's regions by slices (0:-p), (-p:-s), (-s:) per axis,
    partition, and let tokens with the same label attend. -> [P, n, n] bool."""
    shift = shift_of(grid, window)
    img = torch.zeros(1, *grid, 1)
    cnt = 0
    def slices(p, s):
        return (slice(0, None),) if s == 0 else (slice(0, -p), slice(-p, -s), slice(-s, None))
    for st in slices(window[0], shift[0]):
        for sh in slices(window[1], shift[1]):
            for sw in slices(window[2], shift[2]):
                img[:, st, sh, sw, :] = cnt
                cnt += 1
    lab = partition(img, window).squeeze(-1)  # [P, n]
    return lab.unsqueeze(2) == lab.unsqueeze(1)


def attention(x: torch.Tensor, attn_module, mask: Optional[torch.Tensor], windows: int) -> torch.Tensor:
    """timm-style attention (qkv, proj) over x [B * P, n, D], with an optional [P, n, n] bool mask."""
    Bp, n, D = x.shape
    H, hd = attn_module.num_heads, attn_module.head_dim
    qkv = attn_module.qkv(x).reshape(Bp, n, 3, H, hd).permute(2, 0, 3, 1, 4)
    s = (qkv[0] @ qkv[1].transpose(-2, -1)) * hd ** -0.5  # [Bp, H, n, n]
    if mask is not None:
        m = mask.repeat(Bp // windows, 1, 1).unsqueeze(1)  # [Bp, 1, n, n]
        s = s.masked_fill(~m, float("-inf"))
    o = (s.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(Bp, n, D)
    return attn_module.proj(o)


class Attention(nn.Module):
    def __init__(self, hidden: int, num_heads: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, hidden // num_heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)


class ProxyTokenBlock(nn.Module):
    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float, text: bool = False):
        super().__init__()
        self.text_cross = text_cross_or_none(text, hidden, num_heads)
        self.proxy_attn = Attention(hidden, num_heads)
        self.proxy_cross = CrossAttention(hidden, num_heads)
        self.window_attn = Attention(hidden, num_heads)
        self.shifted_attn = Attention(hidden, num_heads)
        self.mlp = Mlp(hidden, int(hidden * mlp_ratio))
        self.scale_shift_table = nn.Parameter(torch.zeros(9, hidden))

    def forward(self, x: torch.Tensor, shared_mod: torch.Tensor, grid: Sequence[int], window: Sequence[int],
                proxy_split: int = 1, text: Optional[Text] = None) -> torch.Tensor:
        """x [B, N, D] raster (f, h, w) order, shared_mod [B, 9D] -> [B, N, D]."""
        B, N, D = x.shape
        Fr, H, W = grid
        pt, ph, pw = window
        P = N // (pt * ph * pw)
        mod = (shared_mod.view(B, 9, D) + self.scale_shift_table).unbind(1)
        # GIIM: proxies by average pooling over proxy windows.
        k = proxy_split
        vol = x.transpose(1, 2).reshape(B, D, Fr, H, W)
        p = F.avg_pool3d(vol, (pt, ph // k, pw // k)).flatten(2).transpose(1, 2)  # [B, M, D]
        q = layer_norm(p)
        p = p + attention(q, self.proxy_attn, None, 1)
        x = x + self.proxy_cross(layer_norm(x), layer_norm(p))
        # TCM: window attention in raster order.
        h = modulate(layer_norm(x), mod[0], mod[1]).view(B, Fr, H, W, D)
        a = merge(attention(partition(h, window), self.window_attn, None, P), B, grid, window)
        x = x + mod[2].unsqueeze(1) * a.reshape(B, N, D)
        h = modulate(layer_norm(x), mod[3], mod[4]).view(B, Fr, H, W, D)
        shift = shift_of(grid, window)
        mask = swin_mask(grid, window) if any(shift) else None
        h = torch.roll(h, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        a = merge(attention(partition(h, window), self.shifted_attn, mask, P), B, grid, window)
        a = torch.roll(a, shifts=shift, dims=(1, 2, 3))
        x = x + mod[5].unsqueeze(1) * a.reshape(B, N, D)
        x = add_text(self, x, text)  # text cross-attention after the shifted windows, as the released block
        return x + mod[8].unsqueeze(1) * self.mlp(modulate(layer_norm(x), mod[6], mod[7]))


class PTDiT(DiT):
    """DiT's stem and head around proxy-token blocks (image grids: frames 1, 8 x 8 windows by default);
    parameter names as ditgen's (proxy_blocks.N.*, adaLN_modulation for the shared adaLN-single head)."""

    def __init__(self, depth: int, hidden_size: int, num_heads: int, patch_size: int, in_channels: int,
                 num_classes: int, windows: int = 8, proxy_split: int = 1, **kw):
        mlp_ratio = kw.get("mlp_ratio", 4.0)
        super().__init__(0, hidden_size, num_heads, patch_size, in_channels, num_classes, **kw)
        self.depth, self.windows, self.proxy_split = depth, windows, proxy_split
        self.proxy_blocks = nn.ModuleList([ProxyTokenBlock(hidden_size, num_heads, mlp_ratio, bool(self.text))
                                           for _ in range(depth)])
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 9 * hidden_size))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        p = self.patch_size
        gh, gw = H // p, W // p
        if gh % (self.windows * self.proxy_split) or gw % (self.windows * self.proxy_split):
            raise ValueError(f"{gh}x{gw} tokens do not divide into {self.windows}x{self.windows} windows")
        h = self.embed(x)
        c, text = self.condition(t, y)
        shared = self.adaLN_modulation(c)
        grid, window = (1, gh, gw), (1, gh // self.windows, gw // self.windows)
        for block in self.proxy_blocks:
            h = block(h, shared, grid, window, self.proxy_split, text)
        return self.unpatchify(self.final_layer(h, c), gh, gw)


def make_ptdit(config: dict) -> PTDiT:
    q = config["proxy"]
    return PTDiT(depth=int(config["depth"]), hidden_size=int(config["hidden_size"]),
                 num_heads=int(config["num_heads"]), patch_size=int(config["patch_size"]),
                 in_channels=int(config["in_channels"]), num_classes=int(config["num_classes"]),
                 windows=int(q.get("windows", 8)), proxy_split=int(q.get("proxy_split", 1)),
                 mlp_ratio=float(config.get("mlp_ratio", 4.0)),
                 class_dropout_prob=float(config.get("class_dropout_prob", 0.1)),
                 learn_sigma=bool(config.get("learn_sigma", True)), input_size=config.get("input_size", (32, 32)),
                 text=config.get("text"))
