#!/usr/bin/env python3
"""PyTorch reference benchmark of the dense DiT that `ditgen bench` times, so the docs can report ratios.

Runs scripts/reference/dit_reference.py (same weights layout, same math as ditgen) in eager mode and under
torch.compile, and times
  * forward passes: every batch in --batches x every latent size in --sizes, median of --reps CUDA-event timed
    forwards after --warmup untimed ones (compile warm-up includes the per-shape compilation);
  * whole generations: DDIM (eta 0, respaced, classifier-free guidance on the 2B batch) of --sample-batch
    images at every size, wall clock from drawing the noise on the GPU to synchronized final latents.
Each measurement is printed as one JSON line on stdout (the keys of `ditgen bench --json`) and as a row of a
short table on stderr. Typical GPU run:

  python scripts/bench/torch_reference.py --model DiT-XL/2 --batches 1,8,64 --json-out $OUT/torch.jsonl
  python scripts/bench/torch_reference.py --model DiT-XL/2 --batches 8 --sizes 32,64,96,128 --sample-batch 0

Registry names (DiT-XL/2, DiT-S/8, ...) get random weights, every parameter ~ N(0, 0.02) from --seed (not the
official zero init, which would make the output trivially zero); a ditgen model file is loaded as stored.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from dit_reference import (OFFICIAL_CONFIGS, Attention, PatchEmbed, load_model_file, make_model,  # noqa: E402
                           official_config)
from gaussian_diffusion import GaussianDiffusion, guided_model, sample_gaussian  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
VAE_FACTOR = 8  # latent -> pixel size, for the table only


class SdpaAttention(Attention):
    """The reference Attention (same weights) with torch's fused scaled_dot_product_attention."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, H, N, hd], scale 1/sqrt(hd) as the reference
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class ContiguousPatchEmbed(PatchEmbed):
    """The reference PatchEmbed writing contiguous tokens (a channels-last convolution), as ditgen does.

    The official flatten(2).transpose(1, 2) of an NCHW convolution output leaves the residual stream
    transposed in memory, so every later elementwise op of eager PyTorch runs strided and slowly.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.contiguous(memory_format=torch.channels_last)).flatten(2).transpose(1, 2).contiguous()


def gflops_per_image(cfg: dict, height: int, width: int) -> float:
    """MAC GFLOPs of one forward of one image (the DiT papers' convention; same formula as ditgen)."""
    p, D, L, C = cfg["patch_size"], cfg["hidden_size"], cfg["depth"], cfg["in_channels"]
    M = int(D * float(cfg.get("mlp_ratio", 4.0)))
    cout = 2 * C if cfg.get("learn_sigma", True) else C
    N = (height // p) * (width // p)
    embed = N * p * p * C * D + 256 * D + D * D
    block = N * (3 * D * D + D * D + 2 * D * M) + 2 * N * N * D + 6 * D * D
    final = 2 * D * D + N * D * p * p * cout
    return (embed + L * block + final) / 1e9


def build_model(spec: str, dtype: torch.dtype, seed: int):
    """-> (model on CPU in dtype, config, display name)."""
    if spec.endswith(".safetensors") or os.path.isfile(spec):
        if not os.path.isfile(spec):
            sys.exit(f"error: model file {spec!r} does not exist")
        model, cfg, meta = load_model_file(spec, dtype)  # named as ditgen names it: the file's model name
        return model, cfg, meta.get("ditgen.name") or os.path.splitext(os.path.basename(spec))[0]
    if spec not in OFFICIAL_CONFIGS:
        sys.exit(f"error: --model {spec!r} is neither a .safetensors file nor a registry name "
                 f"({', '.join(OFFICIAL_CONFIGS)})")
    cfg = official_config(spec, input_size=(32, 32), in_channels=4, num_classes=1000)
    with torch.device("meta"):  # skip the default init; every parameter is drawn below
        model = make_model(cfg)
    model = model.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=gen)
    return model.to(dtype).eval(), cfg, spec


def sdpa_backend(attn: Attention, batch: int, tokens: int, dtype: torch.dtype, device: torch.device) -> str:
    """The SDPA backend torch dispatches to for this block's real q/k/v (shapes, strides, dtype)."""
    if device.type != "cuda":
        return "n/a"
    if not hasattr(torch, "_fused_sdp_choice"):
        return "unknown"
    D = attn.num_heads * attn.head_dim
    x = torch.randn(batch, tokens, D, device=device, dtype=dtype)
    q, k, v = attn.qkv(x).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    choice = torch.nn.attention.SDPBackend(torch._fused_sdp_choice(q, k, v))
    names = {"FLASH_ATTENTION": "flash", "EFFICIENT_ATTENTION": "efficient", "CUDNN_ATTENTION": "cudnn",
             "MATH": "math"}
    return names.get(choice.name, choice.name.lower())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device):
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def time_forward(fn, args, warmup: int, reps: int, device: torch.device):
    """ms of each of `reps` forwards (own CUDA event pair each) after `warmup` untimed ones."""
    for _ in range(warmup):
        fn(*args)
    reset_peak(device)
    if device.type != "cuda":
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn(*args)
            times.append((time.perf_counter() - t0) * 1e3)
        return times
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for start, end in events:
        start.record()
        fn(*args)
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) for start, end in events]


def time_sample(fn, reps: int, device: torch.device):
    """Wall-clock ms of `reps` whole generations after one warm-up generation."""
    fn()
    reset_peak(device)
    times = []
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def int_list(text: str, flag: str):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        sys.exit(f"error: {flag} wants a comma list of integers, got {text!r}")
    if not values or min(values) <= 0:
        sys.exit(f"error: {flag} wants positive integers, got {text!r}")
    return values


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="DiT-XL/2", help="ditgen model file (.safetensors) or registry name "
                    "such as DiT-XL/2, DiT-S/8 (random N(0,0.02) weights) [DiT-XL/2]")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs [0]")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="torch device [cuda if available, else cpu]")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="model/compute dtype [bf16]")
    ap.add_argument("--attention", choices=["sdpa", "explicit"], default="sdpa",
                    help="sdpa: torch's fused scaled_dot_product_attention; explicit: softmax(qk^T)v written out "
                    "as in the official timm-style code [sdpa]")
    ap.add_argument("--tokens", choices=("official", "contiguous"), default="official",
                    help="official: the official DiT's token layout (transposed in memory after the patch "
                         "embedding); contiguous: ditgen's layout [official]")
    ap.add_argument("--modes", default="eager,compile", help="comma list of eager, compile [eager,compile]")
    ap.add_argument("--compile-mode", default=None,
                    help="mode passed to torch.compile, e.g. max-autotune-no-cudagraphs [torch's default]")
    ap.add_argument("--height", type=int, default=None, help="latent height [the model's input size]")
    ap.add_argument("--width", type=int, default=None, help="latent width [the model's input size]")
    ap.add_argument("--batches", default="64", help="comma list of forward batch sizes [64]")
    ap.add_argument("--sizes", default=None, help="comma list of square latent sizes to time, e.g. "
                    "32,64,96,128; replaces --height/--width [--height x --width]")
    ap.add_argument("--warmup", type=int, default=5, help="untimed forwards before each measurement; compile "
                    "always gets at least one [5]")
    ap.add_argument("--reps", type=int, default=20, help="timed forwards per measurement [20]")
    ap.add_argument("--sample-batch", type=int, default=8, help="images per timed generation (one per size); "
                    "0 skips the generation timing [8]")
    ap.add_argument("--sample-steps", type=int, default=50, help="DDIM steps (eta 0, respaced) [50]")
    ap.add_argument("--cfg-scale", type=float, default=4.0, help="classifier-free guidance on all channels; "
                    "1 runs the conditional model only [4.0]")
    ap.add_argument("--sample-reps", type=int, default=3, help="timed generations after one warm-up [3]")
    ap.add_argument("--peak-tflops", type=float, default=800.0, help="the peak mfu divides by: the dense bf16 "
                    "rate measured on the H100 here (its datasheet says 989) [800]")
    ap.add_argument("--json-out", default=None, help="also append the JSON lines to this file")
    a = ap.parse_args()
    a.modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    if not a.modes or any(m not in ("eager", "compile") for m in a.modes):
        ap.error(f"--modes wants a comma list of eager, compile; got {','.join(a.modes)!r}")
    a.batches = int_list(a.batches, "--batches")
    a.sizes = int_list(a.sizes, "--sizes") if a.sizes is not None else None
    for flag, value, low in (("--warmup", a.warmup, 0), ("--reps", a.reps, 1), ("--sample-batch", a.sample_batch, 0),
                             ("--sample-steps", a.sample_steps, 1), ("--sample-reps", a.sample_reps, 1)):
        if value < low:
            ap.error(f"{flag} must be >= {low}, got {value}")
    if a.sample_steps > 1000:
        ap.error("--sample-steps must be <= 1000 (the diffusion has 1000 steps)")
    try:
        a.device = torch.device(a.device)
    except RuntimeError as e:
        ap.error(f"--device: {e}")
    if a.device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but torch sees no CUDA device")
    return a


def main() -> int:
    a = parse_args()
    dtype, dev = DTYPES[a.dtype], a.device
    model, cfg, name = build_model(a.model, dtype, a.seed)
    if a.attention == "sdpa":
        for m in model.modules():
            if type(m) is Attention:
                m.__class__ = SdpaAttention
    if a.tokens == "contiguous":
        model.x_embedder.__class__ = ContiguousPatchEmbed
    model = model.to(dev)
    params = sum(p.numel() for p in model.parameters())
    p, C = model.patch_size, model.in_channels
    H = a.height or model.input_size[0]
    W = a.width or model.input_size[1]
    shapes = [(s, s) for s in a.sizes] if a.sizes else [(H, W)]
    for h, w in shapes:
        if h <= 0 or w <= 0 or h % p or w % p:
            sys.exit(f"error: latent size {h}x{w} must be a positive multiple of the patch size {p}")
        # the reference caches the sin-cos table on the CPU in float32 and copies it every forward; put it on
        # the device in the model dtype once so the copy is a no-op (and not a host->device copy per forward)
        model._pos_cache[(h // p, w // p)] = model.pos_embed(h // p, w // p).to(dev, dtype)
    if a.sample_batch and a.cfg_scale != 1.0 and model.null_class is None:
        sys.exit("error: --cfg-scale != 1 needs a model with a null class (class_dropout_prob > 0)")
    if "compile" in a.modes:  # static shapes, one compilation per shape: keep dynamo from giving up on recompiles
        limit = 4 * (len(a.batches) * len(shapes) + 2) + 64
        for key in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                    "accumulated_cache_size_limit"):
            if hasattr(torch._dynamo.config, key):
                setattr(torch._dynamo.config, key, max(getattr(torch._dynamo.config, key), limit))

    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    gen = torch.Generator(device=dev).manual_seed(a.seed)
    json_file = open(a.json_out, "a") if a.json_out else None
    print(f"{name}: {params / 1e6:.1f}M params, {a.dtype}, {device_name}, attention {a.attention}", file=sys.stderr)
    print(f"{'path':8} {'kind':8} {'px':>9} {'batch':>5} {'attention':15} {'ms':>10} {'ms_min':>10} "
          f"{'img/s':>9} {'TFLOP/s':>8} {f'mfu/{a.peak_tflops:g}':>8} {'GiB':>6}", file=sys.stderr)

    def emit(path, kind, h, w, batch, fwd_batch, times, steps):
        gf = gflops_per_image(cfg, h, w)
        ms, ms_min = statistics.median(times), min(times)
        forwards = 1 if kind == "forward" else steps * (2 if a.cfg_scale != 1.0 else 1)
        tflops = 2.0 * gf * batch * forwards / ms  # 2 FLOPs/MAC; GFLOP per ms = TFLOP/s
        peak = peak_gib(dev)  # read before the backend probe below allocates anything
        attn = "explicit" if a.attention == "explicit" else \
            "sdpa:" + sdpa_backend(model.blocks[0].attn, fwd_batch, (h // p) * (w // p), dtype, dev)
        row = {"tool": "torch", "path": path, "kind": kind, "model": name, "params": params, "height": h,
               "width": w, "tokens": (h // p) * (w // p), "batch": batch, "dtype": a.dtype, "device": device_name,
               "attention": attn, "gflops_per_image": round(gf, 4), "ms": round(ms, 4), "ms_min": round(ms_min, 4),
               "images_per_s": round(batch / ms * 1e3, 3), "tflops": round(tflops, 3),
               "mfu": round(tflops / a.peak_tflops, 4) if dev.type == "cuda" and a.dtype == "bf16" else None,
               "mfu_peak_tflops": a.peak_tflops,
               "peak_memory_gib": round(peak, 3) if peak is not None else None,
               "steps": steps, "cfg_scale": a.cfg_scale if kind == "sample" else None}
        line = json.dumps(row)
        print(line, flush=True)
        if json_file:
            json_file.write(line + "\n")
            json_file.flush()
        mfu = f"{row['mfu']:.3f}" if row["mfu"] is not None else "-"
        mem = f"{row['peak_memory_gib']:.2f}" if row["peak_memory_gib"] is not None else "-"
        print(f"{path:8} {kind:8} {f'{h * VAE_FACTOR}x{w * VAE_FACTOR}':>9} {batch:5d} {attn:15} {ms:10.3f} "
              f"{ms_min:10.3f} {row['images_per_s']:9.2f} {tflops:8.2f} {mfu:>8} {mem:>6}", file=sys.stderr)

    failed = False
    with torch.inference_mode():
        for mode in a.modes:
            label = mode if a.tokens == "official" else mode + "-contiguous"
            fn = model if mode == "eager" else torch.compile(model, mode=a.compile_mode, dynamic=False)
            warmup = a.warmup if mode == "eager" else max(1, a.warmup)
            jobs = []  # per size: every batch, then one generation (the order of `ditgen bench`)
            for h, w in shapes:
                jobs += [("forward", h, w, b) for b in a.batches]
                jobs += [("sample", h, w, a.sample_batch)] if a.sample_batch > 0 else []
            for kind, h, w, b in jobs:
                try:
                    if kind == "forward":
                        x = torch.randn(b, C, h, w, device=dev, generator=gen).to(dtype)
                        t = torch.randint(0, 1000, (b,), device=dev, generator=gen)
                        y = torch.randint(0, model.num_classes, (b,), device=dev, generator=gen)
                        times = time_forward(fn, (x, t, y), warmup, a.reps, dev)
                        emit(label, kind, h, w, b, b, times, None)
                        del x, t, y
                    else:
                        diffusion = GaussianDiffusion.spaced(a.sample_steps, learn_sigma=model.learn_sigma)
                        y = torch.randint(0, model.num_classes, (b,), device=dev, generator=gen)
                        guided = guided_model(fn, y, a.cfg_scale, 0, model.null_class, C)  # 0: all channels

                        def model_fn(xt, tt):  # sampler arithmetic in float32, the model in the chosen dtype
                            return guided(xt.to(dtype), tt.to(dev)).float()

                        def generate():
                            x_T = torch.randn(b, C, h, w, device=dev, generator=gen)
                            return sample_gaussian(model_fn, diffusion, x_T, "ddim", eta=0.0)

                        times = time_sample(generate, a.sample_reps, dev)
                        emit(label, kind, h, w, b, 2 * b if a.cfg_scale != 1.0 else b, times,
                             diffusion.num_timesteps)
                except torch.cuda.OutOfMemoryError:
                    failed = True
                    print(f"{mode:8} {kind:8} {h}x{w} latent, batch {b}: out of GPU memory, skipped",
                          file=sys.stderr)
                    torch.cuda.empty_cache()
                except Exception as e:  # noqa: BLE001 -- a compile failure ends that mode with a clear message
                    if mode != "compile":
                        raise
                    failed = True
                    print(f"error: torch.compile failed ({a.device.type}, {h}x{w} latent, batch {b}): "
                          f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}\n"
                          f"  (skipping the remaining compile measurements; eager results above stand)",
                          file=sys.stderr)
                    break
    if json_file:
        json_file.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
