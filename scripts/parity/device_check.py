#!/usr/bin/env python3
"""Runs one ditgen generation on several devices/dtypes and compares each with the CPU fp32 result.

Builds a random-weight DiT (normal std 0.02, seeded: no checkpoint needed), draws initial noise, runs
`ditgen generate --init-noise ... --save-latents ...` for every DEVICE:DTYPE given, and prints the max abs,
max-abs-relative-to-max and relative L2 difference of each against the first (the reference run).

  python3 scripts/parity/device_check.py --ditgen build/bin/ditgen --config DiT-S/2 --workdir /tmp/dc \
      --runs cpu:fp32 cuda:fp32 cuda:bf16
"""
import argparse
import json
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from convert_dit_checkpoint import save_safetensors, write_model_file  # noqa: E402
from dit_reference import make_model, official_config  # noqa: E402


def load_latents(path: str) -> torch.Tensor:
    from safetensors.torch import load_file
    return load_file(path)["latents"].double()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ditgen", required=True, help="path of the ditgen binary")
    ap.add_argument("--config", default="DiT-S/2")
    ap.add_argument("--latent-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--cfg-scale", type=float, default=4.0)
    ap.add_argument("--labels", default="207,360,387,974")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--runs", nargs="+", default=["cpu:fp32", "cuda:fp32", "cuda:bf16"],
                    help="DEVICE:DTYPE pairs; the first is the reference")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)

    config = official_config(args.config, input_size=(args.latent_size, args.latent_size))
    torch.manual_seed(args.seed)
    model = make_model(config)
    g = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    model_path = os.path.join(args.workdir, "model.safetensors")
    write_model_file(model_path, model.state_dict(), config, args.config,
                     {"sampler": "ddim", "steps": args.steps, "cfg_scale": args.cfg_scale, "cfg_channels": 3},
                     {"untrained": True, "init": f"normal(0, 0.02), seed {args.seed}"})
    labels = args.labels.split(",")
    noise = torch.randn(len(labels), 4, args.latent_size, args.latent_size, generator=g)
    noise_path = os.path.join(args.workdir, "noise.safetensors")
    save_safetensors(noise_path, {"noise": noise})

    results = {}
    for run in args.runs:
        device, dtype = run.split(":")
        out = os.path.join(args.workdir, f"latents_{device.replace(':', '')}_{dtype}.safetensors")
        cmd = [args.ditgen, "generate", "-m", model_path, "--sampler", "ddim", "--steps", str(args.steps),
               "--cfg-scale", str(args.cfg_scale), "--cfg-channels", "3", "--init-noise", noise_path,
               "--save-latents", out, "--device", device, "--dtype", dtype, "--progress", "none", *labels]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        results[run] = load_latents(out)

    ref_name = args.runs[0]
    ref = results[ref_name]
    scale = ref.abs().max().item()
    report = {"config": args.config, "steps": args.steps, "cfg_scale": args.cfg_scale, "reference": ref_name,
              "max_abs_reference": scale, "runs": {}}
    for run, x in results.items():
        d = (x - ref).abs()
        report["runs"][run] = {"max_abs": d.max().item(), "max_abs_rel_to_max": d.max().item() / scale,
                               "rel_l2": ((x - ref).norm() / ref.norm()).item()}
        print(f"{run:>12} vs {ref_name}: max abs {d.max().item():.3e} (max |ref| {scale:.1f}, "
              f"rel-to-max {d.max().item() / scale:.2e}), rel L2 {report['runs'][run]['rel_l2']:.2e}")
    with open(os.path.join(args.workdir, "device_check.json"), "w") as f:
        json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
