"""SparseDiT reference (our own PyTorch, from the paper, arXiv 2412.06028, and docs/SPARSEDIT.md): the token-sparse
layout of a DiT, its weight mapping from a dense DiT, the temporal density schedule and a MAC GFLOPs count.

Layout, bottom to top (depth == P + M*(1+s+1+d) + T):
  * P Poolingformer blocks: DiT blocks whose attention is proj(v(mean_tokens(x))), broadcast to every token
    (the paper's softmax over an all-ones N x N matrix times V, computed as the mean it is);
  * M sparse-dense modules, each: token_merge (cross attention from an S x S adaptive-average-pooled grid to
    all N tokens), s semantic DiT blocks on the S*S sparse tokens, token_recover (nearest upsampling back to
    the token grid, merged = merged_layer1(up) + merged_layer2(full), cross attention from the N merged
    tokens to the S*S sparse ones), d dense DiT blocks;
  * T dense top blocks, then the DiT final layer.
Stem and head are the dense DiT's (dit_reference.DiT, which this model extends). Token grids may be
non-square: S x S sparse tokens come from any gh x gw grid with torch's exact adaptive_avg_pool2d and
nearest-interpolate semantics (uneven bins when S does not divide the grid).

Layout dict (the "sparse" key of a ditgen model config):
  {"pooling_blocks": P, "modules": M, "groups": [1, s, 1, d], "top_blocks": T, "min_grid": a, "max_grid": b}

Rounding: every rounding here is round-half-up, floor(v + 0.5) (not Python's round(), which rounds half to
even), because the C++ side uses std::floor(v + 0.5).
"""
from __future__ import annotations

import json
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from dit_reference import DiT, DiTBlock, Mlp, modulate, official_config

LAYOUT_KEYS = ("pooling_blocks", "modules", "groups", "top_blocks", "min_grid", "max_grid")


# ---------------------------------------------------------------------------------------------------------
# Layout and schedule
# ---------------------------------------------------------------------------------------------------------

def round_half_up(v: float) -> int:
    """floor(v + 0.5): the C++ std::floor(v + 0.5)."""
    return int(math.floor(v + 0.5))


def check_layout(layout: dict, depth: int) -> dict:
    """Validates a layout dict against a depth; returns it with int values."""
    missing = [k for k in LAYOUT_KEYS if k not in layout]
    if missing:
        raise ValueError(f"sparse layout lacks {missing}")
    groups = [int(g) for g in layout["groups"]]
    if len(groups) != 4 or groups[0] != 1 or groups[2] != 1 or groups[1] < 0 or groups[3] < 0:
        raise ValueError(f"sparse groups must be [1, s, 1, d] with s, d >= 0, got {groups}")
    out = {k: groups if k == "groups" else int(layout[k]) for k in LAYOUT_KEYS}  # keys in LAYOUT_KEYS order
    if min(out["pooling_blocks"], out["modules"], out["top_blocks"]) < 0:
        raise ValueError(f"negative block count in {layout}")
    if not 1 <= out["min_grid"] <= out["max_grid"]:
        raise ValueError(f"need 1 <= min_grid <= max_grid, got {out['min_grid']}, {out['max_grid']}")
    total = layout_depth(out)
    if total != depth:
        raise ValueError(f"layout uses {total} blocks but depth is {depth}")
    return out


def layout_depth(layout: dict) -> int:
    return int(layout["pooling_blocks"]) + int(layout["modules"]) * sum(layout["groups"]) + int(layout["top_blocks"])


def density_grid(k: int, steps: int, min_grid: int, max_grid: int, hold: float = 0.25) -> int:
    """Sparse grid side S at sampling step k of `steps` (k = 0 is the noisiest step).

    k0 = floor(hold*steps + 0.5). Steps k < k0 use min_grid. From k0 on, S grows linearly to max_grid at
    k = steps-1:  S = floor(min + ((max - min) * (k - k0)) / (steps - 1 - k0) + 0.5)  (in double; the
    product is an exact integer, then one division, one addition). If steps - 1 - k0 <= 0 there is no ramp:
    max_grid for k >= k0.
    """
    if not 0 <= k < steps:
        raise ValueError(f"step {k} outside [0, {steps})")
    k0 = round_half_up(hold * steps)
    if k < k0:
        return int(min_grid)
    span = steps - 1 - k0
    if span <= 0:
        return int(max_grid)
    return round_half_up(min_grid + float((max_grid - min_grid) * (k - k0)) / float(span))


# ---------------------------------------------------------------------------------------------------------
# Modules (names are the state-dict keys the C++ model loads)
# ---------------------------------------------------------------------------------------------------------

class PoolingAttention(nn.Module):
    """proj(v(mean over tokens of x)): [B, N, D] -> [B, 1, D], broadcast by the caller's addition."""

    def __init__(self, hidden: int):
        super().__init__()
        self.v = nn.Linear(hidden, hidden, bias=True)
        self.proj = nn.Linear(hidden, hidden, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.v(x.mean(dim=1, keepdim=True)))  # [B, 1, D]


class PoolingformerBlock(nn.Module):
    """DiT block (adaLN-Zero) whose attention is PoolingAttention."""

    def __init__(self, hidden: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = PoolingAttention(hidden)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden, int(hidden * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        sh_msa, sc_msa, g_msa, sh_mlp, sc_mlp, g_mlp = self.adaLN_modulation(c).chunk(6, dim=1)  # 6 x [B, D]
        x = x + g_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh_msa, sc_msa))  # [B, N, D]
        x = x + g_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh_mlp, sc_mlp))  # [B, N, D]
        return x


class CrossAttention(nn.Module):
    """Multi-head attention from xq [B, M, D] to xkv [B, N, D] with separate q (D->D) and kv (D->2D)."""

    def __init__(self, hidden: int, num_heads: int):
        super().__init__()
        if hidden % num_heads:
            raise ValueError(f"hidden_size {hidden} not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, hidden // num_heads
        self.q = nn.Linear(hidden, hidden, bias=True)
        self.kv = nn.Linear(hidden, 2 * hidden, bias=True)
        self.proj = nn.Linear(hidden, hidden, bias=True)

    def forward(self, xq: torch.Tensor, xkv: torch.Tensor) -> torch.Tensor:
        B, M, D = xq.shape
        N = xkv.shape[1]
        H, hd = self.num_heads, self.head_dim
        q = self.q(xq).reshape(B, M, H, hd).transpose(1, 2)  # [B, H, M, hd]
        kv = self.kv(xkv).reshape(B, N, 2, H, hd).permute(2, 0, 3, 1, 4)  # [2, B, H, N, hd]
        o = F.scaled_dot_product_attention(q, kv[0], kv[1])  # [B, H, M, hd]
        return self.proj(o.transpose(1, 2).reshape(B, M, D))  # [B, M, D]


class TokenMergeBlock(nn.Module):
    """xs += g_msa * attn(mod(LN(xs)), mod(LN(full))) (same LN and msa shift/scale on both); xs += MLP."""

    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = CrossAttention(hidden, num_heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden, int(hidden * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden, bias=True))

    def forward(self, xs: torch.Tensor, full: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        sh_msa, sc_msa, g_msa, sh_mlp, sc_mlp, g_mlp = self.adaLN_modulation(c).chunk(6, dim=1)  # 6 x [B, D]
        q_in = modulate(self.norm1(xs), sh_msa, sc_msa)  # [B, S*S, D]
        kv_in = modulate(self.norm1(full), sh_msa, sc_msa)  # [B, N, D]
        xs = xs + g_msa.unsqueeze(1) * self.attn(q_in, kv_in)  # [B, S*S, D]
        xs = xs + g_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(xs), sh_mlp, sc_mlp))  # [B, S*S, D]
        return xs


class TokenRecoverBlock(nn.Module):
    """merged = merged_layer1(up) + merged_layer2(full); x = merged + g_msa * attn(mod(LN(merged)),
    mod(LN(xs))) (same LN and msa shift/scale on both); x += MLP."""

    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.merged_layer1 = nn.Linear(hidden, hidden, bias=True)
        self.merged_layer2 = nn.Linear(hidden, hidden, bias=True)
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = CrossAttention(hidden, num_heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden, int(hidden * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden, bias=True))

    def merge(self, up: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
        return self.merged_layer1(up) + self.merged_layer2(full)  # [B, N, D]

    def forward(self, up: torch.Tensor, full: torch.Tensor, xs: torch.Tensor, c: torch.Tensor,
                trace: Optional[dict] = None) -> torch.Tensor:
        sh_msa, sc_msa, g_msa, sh_mlp, sc_mlp, g_mlp = self.adaLN_modulation(c).chunk(6, dim=1)  # 6 x [B, D]
        merged = self.merge(up, full)  # [B, N, D]
        if trace is not None:
            trace["merged"] = merged
        q_in = modulate(self.norm1(merged), sh_msa, sc_msa)  # [B, N, D]
        kv_in = modulate(self.norm1(xs), sh_msa, sc_msa)  # [B, S*S, D]
        x = merged + g_msa.unsqueeze(1) * self.attn(q_in, kv_in)  # [B, N, D]
        x = x + g_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh_mlp, sc_mlp))  # [B, N, D]
        return x


def pool_tokens(x: torch.Tensor, gh: int, gw: int, S: int) -> torch.Tensor:
    """[B, gh*gw, D] (row-major grid) -> adaptive average pool to S x S -> [B, S*S, D] (row-major)."""
    B, N, D = x.shape
    grid = x.transpose(1, 2).reshape(B, D, gh, gw)  # [B, D, gh, gw]
    return F.adaptive_avg_pool2d(grid, (S, S)).flatten(2).transpose(1, 2)  # [B, S*S, D]


def upsample_tokens(xs: torch.Tensor, S: int, gh: int, gw: int) -> torch.Tensor:
    """[B, S*S, D] -> nearest interpolation to gh x gw -> [B, gh*gw, D] (row-major)."""
    B, _, D = xs.shape
    grid = xs.transpose(1, 2).reshape(B, D, S, S)  # [B, D, S, S]
    return F.interpolate(grid, size=(gh, gw), mode="nearest").flatten(2).transpose(1, 2)  # [B, N, D]


class SparseDenseModule(nn.Module):
    """token_merge, semantic_blocks (on S*S tokens), token_recover, normal_blocks (on N tokens)."""

    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float, semantic: int, normal: int,
                 text: bool = False):
        super().__init__()
        self.token_merge = TokenMergeBlock(hidden, num_heads, mlp_ratio)
        self.semantic_blocks = nn.ModuleList([DiTBlock(hidden, num_heads, mlp_ratio, text) for _ in range(semantic)])
        self.token_recover = TokenRecoverBlock(hidden, num_heads, mlp_ratio)
        self.normal_blocks = nn.ModuleList([DiTBlock(hidden, num_heads, mlp_ratio, text) for _ in range(normal)])

    def forward(self, x: torch.Tensor, c: torch.Tensor, gh: int, gw: int, S: int,
                trace: Optional[dict] = None, text=None) -> torch.Tensor:
        full = x  # [B, N, D]
        xs = pool_tokens(full, gh, gw, S)  # [B, S*S, D]
        xs = self.token_merge(xs, full, c)  # [B, S*S, D]
        for block in self.semantic_blocks:
            xs = block(xs, c, text)  # [B, S*S, D]
        up = upsample_tokens(xs, S, gh, gw)  # [B, N, D]
        if trace is not None:
            trace.update(full=full, xs=xs, up=up)
        x = self.token_recover(up, full, xs, c, trace)  # [B, N, D]
        for block in self.normal_blocks:
            x = block(x, c, text)  # [B, N, D]
        return x


class SparseDiT(DiT):
    """Dense DiT stem/head (inherited, incl. pos_embed, conditioning, unpatchify) around the sparse layout.

    `blocks` (from DiT) holds the T dense top blocks; `depth` is the full layout depth.
    """

    def __init__(self, depth: int, hidden_size: int, num_heads: int, patch_size: int, in_channels: int,
                 num_classes: int, layout: dict, mlp_ratio: float = 4.0, class_dropout_prob: float = 0.1,
                 learn_sigma: bool = True, input_size=(32, 32), text: Optional[dict] = None):
        layout = check_layout(layout, depth)
        super().__init__(layout["top_blocks"], hidden_size, num_heads, patch_size, in_channels, num_classes,
                         mlp_ratio, class_dropout_prob, learn_sigma, input_size, text)
        self.depth = depth
        self.layout = layout
        s, d = layout["groups"][1], layout["groups"][3]
        self.pooling_blocks = nn.ModuleList([PoolingformerBlock(hidden_size, mlp_ratio)
                                             for _ in range(layout["pooling_blocks"])])
        self.sparse_modules = nn.ModuleList([SparseDenseModule(hidden_size, num_heads, mlp_ratio, s, d, bool(text))
                                             for _ in range(layout["modules"])])

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, grid: int = None,
                trace: Optional[list] = None) -> torch.Tensor:
        """x [B, C, H, W], t [B], y [B], grid S (sparse grid side) -> [B, out_channels, H, W].

        trace: if a list, one dict per sparse module is appended with its full / xs / up / merged tensors.
        """
        if grid is None or int(grid) < 1:
            raise ValueError(f"SparseDiT.forward needs a sparse grid side >= 1, got {grid}")
        S = int(grid)
        H, W = x.shape[-2:]
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(f"input {H}x{W} is not divisible by the patch size {p}")
        gh, gw = H // p, W // p
        h = self.embed(x)  # [B, N, D]
        c, text = self.condition(t, y)  # [B, D], text states (text models)
        for block in self.pooling_blocks:
            h = block(h, c)  # [B, N, D]
        for module in self.sparse_modules:
            rec = {} if trace is not None else None
            h = module(h, c, gh, gw, S, rec, text)  # [B, N, D]
            if trace is not None:
                trace.append(rec)
        for block in self.blocks:
            h = block(h, c, text)  # [B, N, D]
        h = self.final_layer(h, c)  # [B, N, p*p*out_channels]
        return self.unpatchify(h, gh, gw)  # [B, out_channels, H, W]


# ---------------------------------------------------------------------------------------------------------
# Construction, conversion, loading
# ---------------------------------------------------------------------------------------------------------

def sparse_config(dense_config: dict, layout: dict) -> dict:
    """The dense ditgen config plus the "sparse" key (validated layout)."""
    cfg = dict(dense_config)
    cfg["sparse"] = check_layout(layout, int(dense_config["depth"]))
    return cfg


def make_sparse_model(config: dict) -> SparseDiT:
    """Builds an (uninitialised) SparseDiT from a ditgen config holding a "sparse" layout."""
    if config.get("architecture", "dit") != "dit":
        raise ValueError(f"unsupported architecture {config.get('architecture')!r}")
    if "sparse" not in config:
        raise ValueError("config has no 'sparse' layout")
    return SparseDiT(depth=int(config["depth"]), hidden_size=int(config["hidden_size"]),
                     num_heads=int(config["num_heads"]), patch_size=int(config["patch_size"]),
                     in_channels=int(config["in_channels"]), num_classes=int(config["num_classes"]),
                     layout=config["sparse"], mlp_ratio=float(config.get("mlp_ratio", 4.0)),
                     class_dropout_prob=float(config.get("class_dropout_prob", 0.1)),
                     learn_sigma=bool(config.get("learn_sigma", True)),
                     input_size=config.get("input_size", (32, 32)), text=config.get("text"))


@torch.no_grad()
def convert_dense(dense_model: DiT, dense_config: dict, layout: dict) -> SparseDiT:
    """The paper's mapping: the k-th block of the new layout (pooling blocks; per module token_merge,
    semantic blocks, token_recover, normal blocks; top blocks) takes dense blocks.k.

    Poolingformer attn.v <- qkv rows [2D:3D]; cross attention q <- qkv rows [0:D], kv <- qkv rows [D:3D];
    attn.proj, mlp, adaLN_modulation copied; merged_layer1 = 0, merged_layer2 = I (biases 0).
    Stem and head copied.
    """
    model = make_sparse_model(sparse_config(dense_config, layout))
    D = model.hidden_size
    dense_blocks = iter(dense_model.blocks)

    def copy_common(dst: nn.Module, src: DiTBlock) -> None:
        dst.mlp.load_state_dict(src.mlp.state_dict())
        dst.adaLN_modulation.load_state_dict(src.adaLN_modulation.state_dict())
        dst.attn.proj.load_state_dict(src.attn.proj.state_dict())

    def copy_cross(dst, src: DiTBlock) -> None:
        copy_common(dst, src)
        w, b = src.attn.qkv.weight, src.attn.qkv.bias
        dst.attn.q.weight.copy_(w[:D]); dst.attn.q.bias.copy_(b[:D])
        dst.attn.kv.weight.copy_(w[D:]); dst.attn.kv.bias.copy_(b[D:])

    for pb in model.pooling_blocks:
        src = next(dense_blocks)
        copy_common(pb, src)
        pb.attn.v.weight.copy_(src.attn.qkv.weight[2 * D:]); pb.attn.v.bias.copy_(src.attn.qkv.bias[2 * D:])
    for m in model.sparse_modules:
        copy_cross(m.token_merge, next(dense_blocks))
        for blk in m.semantic_blocks:
            blk.load_state_dict(next(dense_blocks).state_dict())
        rec = m.token_recover
        copy_cross(rec, next(dense_blocks))
        rec.merged_layer1.weight.zero_(); rec.merged_layer1.bias.zero_()
        rec.merged_layer2.weight.copy_(torch.eye(D)); rec.merged_layer2.bias.zero_()
        for blk in m.normal_blocks:
            blk.load_state_dict(next(dense_blocks).state_dict())
    for blk in model.blocks:
        blk.load_state_dict(next(dense_blocks).state_dict())
    assert next(dense_blocks, None) is None, "layout depth checked, all dense blocks used"
    for name in ("x_embedder", "t_embedder", "y_embedder", "final_layer"):
        getattr(model, name).load_state_dict(getattr(dense_model, name).state_dict())
    return model.to(dense_model.x_embedder.proj.weight.dtype).eval()


def load_sparse_model_file(path: str, dtype: torch.dtype = torch.float32) -> Tuple[SparseDiT, dict, Dict[str, str]]:
    """Loads a ditgen model file whose config has a "sparse" layout. Returns (model, config, metadata)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
    config = json.loads(meta["ditgen.config"])
    model = make_sparse_model(config)
    model.load_state_dict({k: v.to(dtype) for k, v in load_file(path).items()}, strict=True)
    return model.to(dtype).eval(), config, meta


# ---------------------------------------------------------------------------------------------------------
# Cost
# ---------------------------------------------------------------------------------------------------------

def gflops(config: dict, layout: Optional[dict], height: int, width: int, grid: Optional[int] = None) -> float:
    """MAC GFLOPs of one forward of one image (the convention of the C++ dit_gflops).

    Counted: every linear (tokens x in x out; the patch-embedding conv as a linear on each patch), two
    attention matmuls 2*Nq*Nkv*D per attention, adaLN linears on 1 token, the timestep MLP (256->D, D->D),
    the final layer. Pooling attention: its two linears on ONE token (the mean comes first). merged_layer1 is
    counted on the N upsampled tokens, as the model applies it. Not counted: adaptive pooling, nearest
    interpolation, LayerNorm, softmax, elementwise ops, the label lookup. layout None: the dense DiT.
    """
    D = float(config["hidden_size"])
    p = int(config["patch_size"])
    mlp = float(int(config["hidden_size"] * float(config.get("mlp_ratio", 4.0))))
    cout = int(config["in_channels"]) * (2 if config.get("learn_sigma", True) else 1)
    N = float((height // p) * (width // p))

    def dit_block(n: float) -> float:
        return n * (4 * D * D + 2 * D * mlp) + 2 * n * n * D + 6 * D * D  # qkv+proj, MLP, attn, adaLN

    total = N * p * p * int(config["in_channels"]) * D + 256 * D + D * D  # patch embed, timestep MLP
    total += 2 * D * D + N * D * p * p * cout  # final layer
    if layout is None:
        return (total + int(config["depth"]) * dit_block(N)) / 1e9
    layout = check_layout(layout, int(config["depth"]))
    if grid is None:
        raise ValueError("a sparse layout needs the grid S")
    M = float(grid * grid)
    pooling = 2 * D * D + N * 2 * D * mlp + 6 * D * D  # v, proj on 1 token; MLP; adaLN
    merge = M * D * D + N * 2 * D * D + M * D * D + 2 * M * N * D + M * 2 * D * mlp + 6 * D * D  # q kv proj attn
    recover = 2 * N * D * D + N * D * D + M * 2 * D * D + N * D * D + 2 * N * M * D + N * 2 * D * mlp + 6 * D * D
    s, d = layout["groups"][1], layout["groups"][3]
    module = merge + s * dit_block(M) + recover + d * dit_block(N)
    total += layout["pooling_blocks"] * pooling + layout["modules"] * module + layout["top_blocks"] * dit_block(N)
    return total / 1e9


PAPER_LAYOUT_512 = {"pooling_blocks": 2, "modules": 4, "groups": [1, 3, 1, 1], "top_blocks": 2,
                    "min_grid": 6, "max_grid": 10}


if __name__ == "__main__":
    xl = official_config("DiT-XL/2")
    dense256 = gflops(xl, None, 32, 32)
    assert abs(dense256 - 118.6) <= 0.1, dense256
    print(f"DiT-XL/2 dense, 32x32 latents (256 px): {dense256:.2f} GFLOPs")
    print(f"DiT-XL/2 dense, 64x64 latents (512 px): {gflops(xl, None, 64, 64):.2f} GFLOPs")
    lay = PAPER_LAYOUT_512
    for S in (6, 8, 10):
        print(f"SparseDiT-XL/2 (2 pooling, 4 x [1,3,1,1], 2 top), 64x64 latents, S={S}: "
              f"{gflops(xl, lay, 64, 64, S):.2f} GFLOPs")
    steps = 250
    grids = [density_grid(k, steps, 6, 10) for k in range(steps)]
    avg = sum(gflops(xl, lay, 64, 64, S) for S in grids) / steps
    print(f"SparseDiT-XL/2, 64x64 latents, {steps}-step schedule S 6 -> 10 (hold 0.25): {avg:.2f} GFLOPs "
          f"average per forward")
