"""Reference PyTorch implementation of ditgen's text path (docs/TEXT.md), for golden tensors.

Written for ditgen from its own specification, with ditgen's parameter names:
  text_encoder.*          token and position embeddings, pre-norm transformer layers with padding masked,
                          a final LayerNorm, projections of the states (cross-attention) and of their mean
                          over the real tokens (into the adaLN condition) to the backbone's width;
  <block>.text_cross.*    q, kv, proj: x + softmax(q k^T / sqrt(hd), padding masked) v projected, PixArt-style
                          (no norm, no gate), between a block's token mixing and its MLP.
Attention is written out (no fused kernels). Token ids: 0 padding, 1 start (alone: the empty prompt), 2.. words.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

PAD_ID, START_ID = 0, 1
Text = Tuple[torch.Tensor, torch.Tensor]  # states [B, L, D], mask [B, L] bool


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """q [B, H, M, hd], k and v [B, H, L, hd], mask [B, L] bool (True = attended) -> [B, H, M, hd]."""
    scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    return scores.softmax(dim=-1) @ v


class TextMlp(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class TextEncoderLayer(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = TextMlp(width, 4 * width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, W = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(B, L, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4)
        a = masked_attention(qkv[0], qkv[1], qkv[2], mask).transpose(1, 2).reshape(B, L, W)
        x = x + self.proj(a)
        return x + self.mlp(self.norm2(x))


class TextEncoder(nn.Module):
    def __init__(self, text: dict, hidden: int):
        super().__init__()
        W, L = int(text.get("width", 128)), int(text.get("max_tokens", 48))
        self.token_embedding = nn.Embedding(len(text["vocabulary"]) + 2, W)
        self.positions = nn.Parameter(torch.zeros(L, W))
        self.layers = nn.ModuleList([TextEncoderLayer(W, int(text.get("heads", 4)))
                                     for _ in range(int(text.get("layers", 2)))])
        self.norm = nn.LayerNorm(W, eps=1e-6)
        self.context_proj = nn.Linear(W, hidden)
        self.pooled_proj = nn.Linear(W, hidden)

    def forward(self, ids: torch.Tensor) -> Tuple[Text, torch.Tensor]:
        """ids [B, L] int64 -> ((states [B, L, D], mask [B, L]), pooled [B, D])."""
        mask = ids != PAD_ID
        x = self.token_embedding(ids) + self.positions
        for layer in self.layers:
            x = layer(x, mask)
        x = self.norm(x)
        w = mask.to(x.dtype).unsqueeze(2)
        mean = (x * w).sum(1) / w.sum(1)
        return (self.context_proj(x), mask), self.pooled_proj(mean)


class TextCrossAttention(nn.Module):
    def __init__(self, hidden: int, num_heads: int):
        super().__init__()
        self.heads = num_heads
        self.q = nn.Linear(hidden, hidden)
        self.kv = nn.Linear(hidden, 2 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, text: Text) -> torch.Tensor:
        states, mask = text
        B, N, D = x.shape
        L, H = states.shape[1], self.heads
        q = self.q(x).reshape(B, N, H, D // H).transpose(1, 2)
        kv = self.kv(states).reshape(B, L, 2, H, D // H).permute(2, 0, 3, 1, 4)
        return self.proj(masked_attention(q, kv[0], kv[1], mask).transpose(1, 2).reshape(B, N, D))


def add_text(block: nn.Module, x: torch.Tensor, text: Optional[Text]) -> torch.Tensor:
    """x plus the block's text attention (x itself for a block or model without text)."""
    if text is None or getattr(block, "text_cross", None) is None:
        return x
    return x + block.text_cross(x, text)


def text_cross_or_none(with_text: bool, hidden: int, num_heads: int) -> Optional[TextCrossAttention]:
    return TextCrossAttention(hidden, num_heads) if with_text else None


def null_ids(batch: int, max_tokens: int) -> torch.Tensor:
    """The empty prompt (the null condition) for `batch` images: [B, L]."""
    ids = torch.full((batch, max_tokens), PAD_ID, dtype=torch.long)
    ids[:, 0] = START_ID
    return ids
