#!/usr/bin/env python3
"""The GPU's two ceilings and where a DiT forward spends its time (METHOD.md: measure before tuning).

  * device-to-device copy bandwidth (bytes read + written per second);
  * bf16 GEMM TFLOP/s at the DiT-XL/2 linear shapes (M = batch * tokens) and at a large square;
  * SDPA time per backend for the DiT-XL/2 attention shape;
  * optionally (--profile FILE) the top CUDA kernels of one reference forward of a ditgen model file.

  python scripts/bench/ceilings.py --batch 64 --profile /tmp/dit-xl2-normal.safetensors
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F


def bench(fn, reps=20, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=1152)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--profile", default=None, help="ditgen model file to profile one reference forward of")
    a = ap.parse_args()
    dev = torch.device("cuda")
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    n = 1 << 28  # 512 MiB of bf16
    src = torch.randn(n, device=dev, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    ms = bench(lambda: dst.copy_(src))
    print(f"copy: {2 * n * 2 / ms / 1e6:.0f} GB/s (read + write)")
    del src, dst
    M, D = a.batch * a.tokens, a.hidden
    for name, (m, k, nn) in {"square 8192": (8192, 8192, 8192), "qkv": (M, D, 3 * D), "proj": (M, D, D),
                             "fc1": (M, D, 4 * D), "fc2": (M, 4 * D, D)}.items():
        x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
        w = torch.randn(nn, k, device=dev, dtype=torch.bfloat16)
        bias = torch.randn(nn, device=dev, dtype=torch.bfloat16)
        ms = bench(lambda: F.linear(x, w, bias))
        print(f"gemm {name:12} {m}x{k}x{nn}: {ms:.3f} ms, {2 * m * k * nn / ms / 1e9:.0f} TFLOP/s")
    hd = D // a.heads
    qkv = torch.randn(a.batch, a.tokens, 3, a.heads, hd, device=dev, dtype=torch.bfloat16).permute(2, 0, 3, 1, 4)
    from torch.nn.attention import SDPBackend, sdpa_kernel
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
        try:
            with sdpa_kernel(backend):
                ms = bench(lambda: F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]))
            flops = 4 * a.batch * a.heads * a.tokens * a.tokens * hd
            print(f"sdpa {backend.name:20}: {ms:.3f} ms, {flops / ms / 1e9:.0f} TFLOP/s")
        except RuntimeError as e:
            print(f"sdpa {backend.name:20}: unavailable ({str(e).splitlines()[0][:80]})")
    if a.profile:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
        from dit_reference import load_model_file
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from torch_reference import SdpaAttention
        from dit_reference import Attention
        model = load_model_file(a.profile, torch.bfloat16)[0].to(dev)
        for m in model.modules():
            if type(m) is Attention:
                m.__class__ = SdpaAttention
        side = int(round((a.tokens ** 0.5) * model.patch_size))
        x = torch.randn(a.batch, model.in_channels, side, side, device=dev, dtype=torch.bfloat16)
        t = torch.randint(0, 1000, (a.batch,), device=dev)
        y = torch.randint(0, 1000, (a.batch,), device=dev)
        with torch.inference_mode():
            for _ in range(3):
                model(x, t, y)
            torch.cuda.synchronize()
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                model(x, t, y)
                torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=15, max_name_column_width=70))
    return 0


if __name__ == "__main__":
    sys.exit(main())
