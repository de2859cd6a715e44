"""Reference samplers for ditgen golden tensors: DiT's Gaussian diffusion (DDPM / DDIM, respaced) and a
rectified-flow Euler sampler, plus classifier-free guidance and ditgen's per-image RNG protocol.

Written for ditgen from the specification of how the official facebookresearch/DiT diffusion behaves.
Numerics that matter for 1e-5 agreement with the C++ engine:
  * schedules and derived arrays are float64 numpy;
  * every coefficient is looked up at an integer step index in float64 and cast to float32, and only then
    multiplies float32 tensors (the official _extract_into_tensor does the same);
  * scalar formulas of such coefficients (the DDIM sigma, sqrt(alpha_bar_prev), ...) are evaluated in float32
    on the already-cast values.

RNG protocol (reproduced by the C++ side, whose CPU generator equals PyTorch's):
  image i has its own torch.Generator().manual_seed(seed_i); x_T = torch.randn(C, H, W, generator=g_i) (float32);
  stochastic samplers (ddpm, ddim with eta > 0) then draw, for every step in sampling order, one
  torch.randn(C, H, W, generator=g_i) per image -- on the final step too, although it is masked out there.
  Deterministic samplers (ddim eta=0, euler) draw nothing after x_T.
"""
from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x [B,C,H,W], t [B]) -> output


# ---------------------------------------------------------------------------------------------------------
# Schedules and respacing
# ---------------------------------------------------------------------------------------------------------

def linear_betas(num_timesteps: int = 1000) -> np.ndarray:
    """DiT's linear schedule, 1e-4 .. 0.02 scaled to 1000 steps, float64."""
    scale = 1000 / num_timesteps
    return np.linspace(scale * 0.0001, scale * 0.02, num_timesteps, dtype=np.float64)


def space_timesteps(num_timesteps: int, num_steps: int) -> List[int]:
    """Sorted step indices kept when sampling with num_steps steps (one section of the official scheme).

    frac_stride = (T-1)/(K-1) (1 when K == 1); index_k = round(cur), cur accumulated by += frac_stride, with
    Python's round (round-half-to-even) -- the accumulation, not k*stride, is what the official code does.
    """
    if not 1 <= num_steps <= num_timesteps:
        raise ValueError(f"cannot use {num_steps} steps out of {num_timesteps}")
    frac_stride = 1.0 if num_steps <= 1 else (num_timesteps - 1) / (num_steps - 1)
    cur = 0.0
    taken = set()
    for _ in range(num_steps):
        taken.add(round(cur))
        cur += frac_stride
    return sorted(taken)


class GaussianDiffusion:
    """Arrays of one (possibly respaced) schedule; sampling helpers take a model function of (x, t_index)."""

    def __init__(self, betas: np.ndarray, learn_sigma: bool, timestep_map: Optional[Sequence[int]] = None):
        betas = np.asarray(betas, dtype=np.float64)
        self.betas = betas
        self.num_timesteps = len(betas)
        self.learn_sigma = learn_sigma
        self.timestep_map = np.asarray(timestep_map if timestep_map is not None else range(len(betas)),
                                       dtype=np.int64)
        alphas = 1.0 - betas
        acp = np.cumprod(alphas, axis=0)
        self.alphas_cumprod = acp
        self.alphas_cumprod_prev = np.append(1.0, acp[:-1])
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / acp)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / acp - 1)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - acp)
        # the posterior variance is 0 at t=0; its log is clipped by repeating the t=1 value. With a single
        # step (K=1) there is no t=1 (the official code then fails); the variance is never used there because
        # the only step is t=0, whose noise is masked, so any finite value will do.
        if len(betas) > 1:
            self.posterior_log_variance_clipped = np.log(np.append(self.posterior_variance[1],
                                                                   self.posterior_variance[1:]))
        else:
            self.posterior_log_variance_clipped = np.log(betas)
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - acp)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - acp)
        self.log_betas = np.log(betas)
        # FIXED_LARGE (the official default when learn_sigma is off): betas, with the first one replaced
        if len(betas) > 1:
            self.fixed_large_log_variance = np.log(np.append(self.posterior_variance[1], betas[1:]))
        else:
            self.fixed_large_log_variance = np.log(betas)

    @classmethod
    def spaced(cls, num_steps: int, learn_sigma: bool, num_timesteps: int = 1000) -> "GaussianDiffusion":
        """The official create_diffusion(str(num_steps)) schedule: respaced betas and the timestep map."""
        base_acp = np.cumprod(1.0 - linear_betas(num_timesteps))
        use = space_timesteps(num_timesteps, num_steps)
        last = 1.0
        betas = []
        for i in use:
            betas.append(1 - base_acp[i] / last)
            last = base_acp[i]
        return cls(np.array(betas, dtype=np.float64), learn_sigma, timestep_map=use)

    # ---- coefficient lookup: float64 at one index, then float32 ------------------------------------------
    @staticmethod
    def _c(arr: np.ndarray, t: int) -> torch.Tensor:
        return torch.tensor(float(arr[t]), dtype=torch.float64).float()

    def model_timesteps(self, t: int, batch: int) -> torch.Tensor:
        """The model sees the ORIGINAL training timestep timestep_map[t] (int64), not the respaced index."""
        return torch.full((batch,), int(self.timestep_map[t]), dtype=torch.int64)

    def p_mean_variance(self, model_out: torch.Tensor, x: torch.Tensor, t: int):
        """Returns (mean, log_variance, pred_xstart, eps) for step index t; no clipping of pred_xstart."""
        C = x.shape[1]
        if self.learn_sigma:
            if model_out.shape[1] != 2 * C:
                raise ValueError(f"learn_sigma model must output {2 * C} channels, got {model_out.shape[1]}")
            eps, v = torch.split(model_out, C, dim=1)
            min_log = self._c(self.posterior_log_variance_clipped, t)
            max_log = self._c(self.log_betas, t)
            frac = (v + 1) / 2  # the model output in [-1, 1] interpolates between the two log variances
            log_var = frac * max_log + (1 - frac) * min_log
        else:
            eps = model_out[:, :C]
            log_var = self._c(self.fixed_large_log_variance, t) * torch.ones_like(x)
        pred_xstart = self._c(self.sqrt_recip_alphas_cumprod, t) * x - self._c(self.sqrt_recipm1_alphas_cumprod, t) * eps
        mean = self._c(self.posterior_mean_coef1, t) * pred_xstart + self._c(self.posterior_mean_coef2, t) * x
        return mean, log_var, pred_xstart, eps

    def ddpm_step(self, model_out, x, t, noise):
        mean, log_var, _, _ = self.p_mean_variance(model_out, x, t)
        if t == 0:  # no noise on the last step (it was still drawn); same as the official mask multiply
            return mean
        return mean + torch.exp(0.5 * log_var) * noise

    def ddim_step(self, model_out, x, t, eta: float, noise=None):
        _, _, pred_xstart, _ = self.p_mean_variance(model_out, x, t)
        # eps re-derived from pred_xstart (as the official ddim_sample does)
        eps = (self._c(self.sqrt_recip_alphas_cumprod, t) * x - pred_xstart) / self._c(self.sqrt_recipm1_alphas_cumprod, t)
        ab = self._c(self.alphas_cumprod, t)
        abp = self._c(self.alphas_cumprod_prev, t)
        sigma = eta * torch.sqrt((1 - abp) / (1 - ab)) * torch.sqrt(1 - ab / abp)
        x_next = pred_xstart * torch.sqrt(abp) + torch.sqrt(1 - abp - sigma ** 2) * eps
        if noise is not None and t != 0:
            x_next = x_next + sigma * noise
        return x_next


# ---------------------------------------------------------------------------------------------------------
# RNG protocol and classifier-free guidance
# ---------------------------------------------------------------------------------------------------------

def make_generators(seeds: Sequence[int]) -> List[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def draw_noise(gens: Sequence[torch.Generator], shape_chw: Sequence[int]) -> torch.Tensor:
    """One randn(C,H,W) per image from its own generator, stacked to [B,C,H,W] float32."""
    return torch.stack([torch.randn(*shape_chw, generator=g, dtype=torch.float32) for g in gens])


def guided_model(model, y: torch.Tensor, cfg_scale: float, cfg_channels: int, null_class: Optional[int],
                 in_channels: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Wraps model(x, t, y) into f(x, t) with classifier-free guidance.

    cfg_scale == 1 runs only the conditional model. Otherwise the model runs once on cat([x, x]) with labels
    cat([y, null]); on the first cfg_channels eps channels (0 = all in_channels) guided = u + s*(c - u); the
    other eps channels and the variance channels come from the conditional half.
    """
    if cfg_scale == 1.0:
        return lambda x, t: model(x, t, y)
    if null_class is None:
        raise ValueError("classifier-free guidance needs a model with a null class (class_dropout_prob > 0)")
    nch = in_channels if cfg_channels <= 0 else min(cfg_channels, in_channels)

    def f(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        y_null = torch.full_like(y, null_class)
        out = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, y_null]))
        cond, uncond = out[:B], out[B:]
        guided = uncond[:, :nch] + cfg_scale * (cond[:, :nch] - uncond[:, :nch])
        return torch.cat([guided, cond[:, nch:]], dim=1)

    return f


# ---------------------------------------------------------------------------------------------------------
# Sampling loops
# ---------------------------------------------------------------------------------------------------------

@torch.no_grad()
def sample_gaussian(model_fn, diffusion: GaussianDiffusion, x_T: torch.Tensor, sampler: str,
                    eta: float = 0.0, gens: Optional[Sequence[torch.Generator]] = None,
                    trace: Optional[list] = None, noise_fn: Optional[Callable[[], torch.Tensor]] = None
                    ) -> torch.Tensor:
    """Runs the respaced reverse process from x_T. sampler 'ddpm' or 'ddim'.

    gens must be the generators that drew x_T when the sampler is stochastic (ddpm, or ddim with eta > 0).
    trace, if a list, receives x after every step. noise_fn, if given, replaces the per-image protocol as the
    source of step noise (the parity script uses it to replay the official code's global-RNG draws).
    """
    stochastic = sampler == "ddpm" or (sampler == "ddim" and eta > 0)
    if stochastic and gens is None and noise_fn is None:
        raise ValueError("stochastic sampler needs the per-image generators")
    x = x_T
    B = x.shape[0]
    for t in reversed(range(diffusion.num_timesteps)):
        out = model_fn(x, diffusion.model_timesteps(t, B))
        noise = None
        if stochastic:
            noise = noise_fn() if noise_fn is not None else draw_noise(gens, x.shape[1:])
        if sampler == "ddpm":
            x = diffusion.ddpm_step(out, x, t, noise)
        elif sampler == "ddim":
            x = diffusion.ddim_step(out, x, t, eta, noise)
        else:
            raise ValueError(f"unknown sampler {sampler!r}")
        if trace is not None:
            trace.append(x.clone())
    return x


def flow_timesteps(num_steps: int) -> List[float]:
    """t_k = 1 - k/K for k = 0..K, computed in double precision."""
    return [1.0 - k / num_steps for k in range(num_steps + 1)]


@torch.no_grad()
def sample_flow_euler(model_fn, x_T: torch.Tensor, num_steps: int, trace: Optional[list] = None) -> torch.Tensor:
    """Rectified flow x_t = (1-t) x0 + t noise, velocity v = noise - x0; Euler from t=1 to t=0.

    The model sees the float32 timestep float32(t_k * 1000) (product taken in double); the step is
    x <- x + float32(t_{k+1} - t_k) * v (difference taken in double).
    """
    ts = flow_timesteps(num_steps)
    x = x_T
    B = x.shape[0]
    for k in range(num_steps):
        t_model = torch.full((B,), ts[k] * 1000.0, dtype=torch.float32)
        v = model_fn(x, t_model)
        dt = torch.tensor(ts[k + 1] - ts[k], dtype=torch.float64).float()
        x = x + dt * v
        if trace is not None:
            trace.append(x.clone())
    return x
