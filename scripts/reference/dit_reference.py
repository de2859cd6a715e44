"""Reference PyTorch implementation of the dense DiT (Peebles & Xie) used to produce ditgen golden tensors.

Written for ditgen from the model specification; it computes what the official facebookresearch/DiT models.py
computes and uses the same state-dict names, so official checkpoints load with load_state_dict unchanged
(the stored pos_embed, if any, is ignored: the fixed sin-cos table is rebuilt for every input size).

Differences from the official module, on purpose:
  * any input H x W divisible by the patch works (non-square token grids included);
  * attention is written out (softmax(q k^T / sqrt(hd)) v) rather than calling a fused kernel;
  * no training-time code (label dropout, initialisation) -- inference only.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from text_reference import Text, TextEncoder, add_text, text_cross_or_none

# name -> (depth, hidden_size, num_heads, patch_size); the 12 configurations of the DiT paper.
_SIZES = {"XL": (28, 1152, 16), "L": (24, 1024, 16), "B": (12, 768, 12), "S": (12, 384, 6)}
OFFICIAL_CONFIGS: Dict[str, Dict[str, int]] = {
    f"DiT-{size}/{patch}": {"depth": d, "hidden_size": h, "num_heads": nh, "patch_size": patch}
    for size, (d, h, nh) in _SIZES.items()
    for patch in (2, 4, 8)
}


def official_config(name: str, input_size: Sequence[int] = (32, 32), in_channels: int = 4,
                    num_classes: int = 1000, image_space: str = "latent") -> dict:
    """Full ditgen config (MODEL_FORMAT.md) for one of the official DiT shapes with the official defaults."""
    if name not in OFFICIAL_CONFIGS:
        raise KeyError(f"unknown DiT config {name!r}; known: {', '.join(OFFICIAL_CONFIGS)}")
    cfg = {"architecture": "dit", **OFFICIAL_CONFIGS[name], "mlp_ratio": 4.0, "in_channels": in_channels,
           "input_size": [int(input_size[0]), int(input_size[1])], "num_classes": num_classes,
           "class_dropout_prob": 0.1, "learn_sigma": True, "objective": "eps", "diffusion_steps": 1000,
           "beta_schedule": "linear", "image_space": image_space}
    return cfg


# ---------------------------------------------------------------------------------------------------------
# Fixed 2D sin-cos positional embedding
# ---------------------------------------------------------------------------------------------------------

def sincos_1d(dim: int, pos: np.ndarray) -> np.ndarray:
    """[len(pos), dim] = concat[sin(pos*omega), cos(pos*omega)], omega_k = 1/10000^(k/(dim/2)), float64."""
    assert dim % 2 == 0
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000 ** omega
    out = np.asarray(pos, dtype=np.float64).reshape(-1)[:, None] * omega[None, :]
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def pos_embed_2d(hidden_size: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """[1, gh*gw, D] float32. Token i*gw+j: first D/2 channels encode the column j, last D/2 the row i.

    Computed in float64 and cast once, as the official code does (its square-grid result is identical).
    """
    if hidden_size % 4 != 0:
        raise ValueError(f"hidden_size {hidden_size} must be divisible by 4 for the 2D sin-cos embedding")
    rows, cols = np.meshgrid(np.arange(grid_h, dtype=np.float64), np.arange(grid_w, dtype=np.float64),
                             indexing="ij")  # both [gh, gw], row-major token order
    emb_col = sincos_1d(hidden_size // 2, cols)
    emb_row = sincos_1d(hidden_size // 2, rows)
    emb = np.concatenate([emb_col, emb_row], axis=1)
    return torch.from_numpy(emb).float().unsqueeze(0)


# ---------------------------------------------------------------------------------------------------------
# Modules (names match the official state dict)
# ---------------------------------------------------------------------------------------------------------

def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class PatchEmbed(nn.Module):
    """Conv2d with kernel = stride = patch, then tokens in row-major order: [B, gh*gw, D]."""

    def __init__(self, patch: int, in_channels: int, hidden: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden, kernel_size=patch, stride=patch, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class TimestepEmbedder(nn.Module):
    FREQ_DIM = 256

    def __init__(self, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(self.FREQ_DIM, hidden, bias=True), nn.SiLU(),
                                 nn.Linear(hidden, hidden, bias=True))

    @staticmethod
    def frequency_embedding(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
        # float32 throughout; integer timesteps are converted with .float() (exact up to 2^24).
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float32, device=t.device)
                          / half)
        args = t[:, None].float() * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:  # never for dim 256; kept so odd dims stay well defined
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return emb

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        # the embedding is float32 (as officially); cast only so a float64 copy of the model also runs
        return self.mlp(self.frequency_embedding(t, self.FREQ_DIM).to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes: int, hidden: int, class_dropout_prob: float):
        super().__init__()
        # the extra row (index num_classes) is the null / unconditional class used by CFG
        self.embedding_table = nn.Embedding(num_classes + int(class_dropout_prob > 0), hidden)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.embedding_table(y)


class Attention(nn.Module):
    def __init__(self, hidden: int, num_heads: int):
        super().__init__()
        if hidden % num_heads:
            raise ValueError(f"hidden_size {hidden} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = hidden // num_heads
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=True)
        self.proj = nn.Linear(hidden, hidden, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, H, N, hd]
        attn = (q @ k.transpose(-2, -1)) * (self.head_dim ** -0.5)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(B, N, D)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, hidden: int, mlp_hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden, mlp_hidden, bias=True)
        self.fc2 = nn.Linear(mlp_hidden, hidden, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class DiTBlock(nn.Module):
    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float, text: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden, num_heads)
        self.text_cross = text_cross_or_none(text, hidden, num_heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden, int(hidden * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor, text: Optional[Text] = None) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x = add_text(self, x, text)
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class FinalLayer(nn.Module):
    def __init__(self, hidden: int, patch: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, patch * patch * out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class DiT(nn.Module):
    def __init__(self, depth: int, hidden_size: int, num_heads: int, patch_size: int, in_channels: int,
                 num_classes: int, mlp_ratio: float = 4.0, class_dropout_prob: float = 0.1,
                 learn_sigma: bool = True, input_size: Sequence[int] = (32, 32), text: Optional[dict] = None):
        super().__init__()
        self.text = text  # a text model's "text" config (vocabulary, max_tokens, width, layers, heads), or None
        self.depth, self.hidden_size, self.num_heads = depth, hidden_size, num_heads
        self.patch_size, self.in_channels = patch_size, in_channels
        self.out_channels = in_channels * 2 if learn_sigma else in_channels
        self.learn_sigma = learn_sigma
        self.num_classes = num_classes
        self.null_class = num_classes if class_dropout_prob > 0 else None
        self.input_size = tuple(int(s) for s in input_size)
        self.x_embedder = PatchEmbed(patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        if text:
            self.text_encoder = TextEncoder(text, hidden_size)
        else:
            self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob)
        self.blocks = nn.ModuleList([DiTBlock(hidden_size, num_heads, mlp_ratio, bool(text)) for _ in range(depth)])
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
        self._pos_cache: Dict[Tuple[int, int], torch.Tensor] = {}

    # pos_embed is not a parameter here: drop a stored one so official state dicts load strictly.
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "pos_embed", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def pos_embed(self, grid_h: int, grid_w: int) -> torch.Tensor:
        key = (grid_h, grid_w)
        if key not in self._pos_cache:
            self._pos_cache[key] = pos_embed_2d(self.hidden_size, grid_h, grid_w)
        return self._pos_cache[key]

    def unpatchify(self, x: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
        """[B, gh*gw, p*p*c] -> [B, c, gh*p, gw*p]; each token's vector is laid out (p_row, p_col, channel)."""
        p, c = self.patch_size, self.out_channels
        x = x.reshape(x.shape[0], grid_h, grid_w, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], c, grid_h * p, grid_w * p)

    def conditioning(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.condition(t, y)[0]

    def condition(self, t: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, Optional[Text]]:
        """(c [B, D], text or None): y is [B] class ids, or [B, L] token ids for a text model."""
        if self.text:
            text, pooled = self.text_encoder(y)
            return self.t_embedder(t) + pooled, text
        return self.t_embedder(t) + self.y_embedder(y), None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        gh, gw = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        return self.x_embedder(x) + self.pos_embed(gh, gw).to(x.device, x.dtype)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W], t [B] (int or float timesteps), y [B] int64 class ids -> [B, out_channels, H, W]."""
        H, W = x.shape[-2:]
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(f"input {H}x{W} is not divisible by the patch size {p}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]}")
        gh, gw = H // p, W // p
        h = self.embed(x)
        c, text = self.condition(t, y)
        for block in self.blocks:
            h = block(h, c, text)
        h = self.final_layer(h, c)
        return self.unpatchify(h, gh, gw)


def make_model(config: dict) -> DiT:
    """Builds an (uninitialised) DiT from a ditgen.config dict (MODEL_FORMAT.md)."""
    if config.get("architecture", "dit") != "dit":
        raise ValueError(f"unsupported architecture {config.get('architecture')!r}")
    return DiT(depth=int(config["depth"]), hidden_size=int(config["hidden_size"]),
               num_heads=int(config["num_heads"]), patch_size=int(config["patch_size"]),
               in_channels=int(config["in_channels"]), num_classes=int(config["num_classes"]),
               mlp_ratio=float(config.get("mlp_ratio", 4.0)),
               class_dropout_prob=float(config.get("class_dropout_prob", 0.1)),
               learn_sigma=bool(config.get("learn_sigma", True)),
               input_size=config.get("input_size", (32, 32)), text=config.get("text"))


def load_model_file(path: str, dtype: torch.dtype = torch.float32) -> Tuple[DiT, dict, Dict[str, str]]:
    """Loads a ditgen model file (single safetensors). Returns (model in eval mode, config, raw metadata)."""
    import json
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
    if "ditgen.config" not in meta:
        raise ValueError(f"{path}: no ditgen.config in the safetensors metadata")
    config = json.loads(meta["ditgen.config"])
    model = make_model(config)
    state = {k: v.to(dtype) for k, v in load_file(path).items()}
    model.load_state_dict(state, strict=True)
    return model.to(dtype).eval(), config, meta
