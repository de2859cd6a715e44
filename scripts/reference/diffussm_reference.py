"""Our PyTorch reference of DiffuSSM (docs/DIFFUSSM.md), written from the paper, arXiv 2311.18257 (its
index algebra and BiGS's S4D). The S4D here convolves by an explicit causal Toeplitz matrix built from the
kernel (no FFT, no recurrence), so it checks the C++ engine's FFT path independently.

S4D, channel c (H kernels: one per channel or one shared):
  A = -exp(log_A_real) + i A_imag, dt = exp(log_dt), C complex ([..., 2] = real, imaginary)
  K[l] = 2 Re sum_n C_n (exp(dt A_n) - 1) / A_n * exp(dt A_n l)          (ZOH, B = 1)
  y[l] = sum_{k <= l} K[l - k] u[k] + D_c u[l]

Block (hourglass ratio M, J = L / M; h = modulate(LN(x), shift, scale); I_j = h_{jM} || ... || h_{jM+M-1}):
  U  = GELU(expand(GELU(compress(I))))                     unpacked to [B, L, D]
  Y  = S4D_fwd(U) || flip(S4D_bwd(flip(U)))                [B, L, 2D]
  I' = GELU(contract(Y packed to [B, J, 2 M D]))
  O  = out(GELU(mix(I')) * GELU(gate(I)))                  unpacked to [B, L, D]
  x  = x + gate_ada * O
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from dit_reference import DiT, modulate
from text_reference import Text, add_text, text_cross_or_none


def gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


class S4D(nn.Module):
    def __init__(self, channels: int, state_size: int, shared_kernel: bool):
        super().__init__()
        H, modes = (1 if shared_kernel else channels), state_size // 2
        self.log_dt = nn.Parameter(torch.zeros(H))
        self.log_A_real = nn.Parameter(torch.zeros(H, modes))
        self.A_imag = nn.Parameter(torch.zeros(H, modes))
        self.C = nn.Parameter(torch.zeros(H, modes, 2))
        self.D = nn.Parameter(torch.zeros(channels))

    def kernel(self, L: int) -> torch.Tensor:
        """-> [H, L]"""
        A = torch.complex(-self.log_A_real.exp(), self.A_imag)            # [H, n]
        dtA = A * self.log_dt.exp()[:, None]                                # [H, n]
        CB = torch.view_as_complex(self.C.contiguous()) * (dtA.exp() - 1) / A
        l = torch.arange(L, dtype=torch.float32)
        return 2 * (CB[..., None] * torch.exp(dtA[..., None] * l)).sum(1).real

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u [B, L, C] -> [B, L, C], causal."""
        B, L, Ch = u.shape
        K = self.kernel(L).expand(Ch, L)                                    # [C, L]
        lag = torch.arange(L)[:, None] - torch.arange(L)[None, :]          # [L, L]: l - k
        T = torch.where(lag >= 0, K[:, lag.clamp(min=0)], torch.zeros(()))  # [C, L, L]
        return torch.einsum("clk,bkc->blc", T, u) + u * self.D


class DiffuSSMBlock(nn.Module):
    def __init__(self, hidden: int, hourglass: int, gate_hidden: int, state_size: int, shared_kernel: bool,
                 text_heads: int = 0):
        super().__init__()
        self.text_cross = text_cross_or_none(text_heads > 0, hidden, text_heads)
        D, M, Fh = hidden, hourglass, gate_hidden
        self.M = M
        self.compress = nn.Linear(M * D, D)
        self.expand = nn.Linear(D, M * D)
        self.ssm_forward = S4D(D, state_size, shared_kernel)
        self.ssm_backward = S4D(D, state_size, shared_kernel)
        self.contract = nn.Linear(2 * M * D, D)
        self.gate = nn.Linear(M * D, Fh)
        self.mix = nn.Linear(D, Fh)
        self.out = nn.Linear(Fh, M * D)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(D, 3 * D))

    def bidirectional_ssm(self, u: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.ssm_forward(u), self.ssm_backward(u.flip(1)).flip(1)], -1)

    def forward(self, x: torch.Tensor, c: torch.Tensor, text: Optional[Text] = None) -> torch.Tensor:
        B, L, D = x.shape
        J = L // self.M
        shift, scale, g = self.adaLN_modulation(c).chunk(3, dim=1)
        h = modulate(F.layer_norm(x, (D,), eps=1e-6), shift, scale)
        I = h.reshape(B, J, self.M * D)
        U = gelu(self.expand(gelu(self.compress(I)))).reshape(B, L, D)
        Y = self.bidirectional_ssm(U).reshape(B, J, 2 * self.M * D)
        O = self.out(gelu(self.mix(gelu(self.contract(Y)))) * gelu(self.gate(I))).reshape(B, L, D)
        return add_text(self, x + g.unsqueeze(1) * O, text)


class DiffuSSM(DiT):
    """DiT's stem (patch size 1 by default, sin-cos positions) and head around DiffuSSM blocks; parameter
    names as ditgen's (ssm_blocks.N.*)."""

    def __init__(self, depth: int, hidden_size: int, num_heads: int, patch_size: int, in_channels: int,
                 num_classes: int, state_size: int = 64, hourglass: int = 2, kernels: str = "channel", **kw):
        mlp_ratio = kw.get("mlp_ratio", 4.0)
        super().__init__(0, hidden_size, num_heads, patch_size, in_channels, num_classes, **kw)
        gate_hidden = int(round(hidden_size * mlp_ratio))
        self.ssm_blocks = nn.ModuleList([DiffuSSMBlock(hidden_size, hourglass, gate_hidden, state_size,
                                                       kernels == "shared", num_heads if self.text else 0)
                                         for _ in range(depth)])

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gh, gw = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        h = self.embed(x)
        c, text = self.condition(t, y)
        for block in self.ssm_blocks:
            h = block(h, c, text)
        return self.unpatchify(self.final_layer(h, c), gh, gw)


def make_diffussm(config: dict) -> DiffuSSM:
    q = config["ssm"]
    return DiffuSSM(depth=int(config["depth"]), hidden_size=int(config["hidden_size"]),
                    num_heads=int(config["num_heads"]), patch_size=int(config["patch_size"]),
                    in_channels=int(config["in_channels"]), num_classes=int(config["num_classes"]),
                    state_size=int(q.get("state_size", 64)), hourglass=int(q.get("hourglass", 2)),
                    kernels=q.get("kernels", "channel"), mlp_ratio=float(config.get("mlp_ratio", 4.0)),
                    class_dropout_prob=float(config.get("class_dropout_prob", 0.1)),
                    learn_sigma=bool(config.get("learn_sigma", True)), input_size=config.get("input_size", (32, 32)),
                    text=config.get("text"))
