#!/usr/bin/env python3
"""End-to-end parity of ditgen (and of our Python reference) against the official facebookresearch/DiT code.

The official code is imported from a separate checkout (--dit-repo, needs timm); nothing of it lives here.

  prepare   random-weight official DiT -> DIR/official.pt -> (our converter) DIR/model.safetensors;
            seeded noise DIR/noise.safetensors, labels DIR/labels.txt; official DDIM + CFG sampling on the CPU
            in fp32 -> DIR/official_latents.safetensors. Also checks scripts/reference against the official
            code on the same weights (forward pass, DDIM eta 0, and DDPM / DDIM eta 1 replaying the official
            RNG draws) and prints the max abs differences; then prints the ditgen command to run.
  compare   DIR/ditgen_latents.safetensors vs DIR/official_latents.safetensors; exit 1 when the max abs
            error exceeds max(--tol, --rel-tol x max |official|) (random weights give latents of ~1e2..1e3).

Example:
  python scripts/parity/official_parity.py --dit-repo /tmp/DiT --config DiT-S/2 --workdir out/parity-s2 prepare
  ditgen generate ...   (printed by prepare)
  python scripts/parity/official_parity.py --workdir out/parity-s2 compare
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SCRIPTS, "reference"))
import gaussian_diffusion as gd  # noqa: E402
from dit_reference import OFFICIAL_CONFIGS, load_model_file  # noqa: E402

NUM_CLASSES = 1000
IN_CHANNELS = 4
CFG_CHANNELS = 3  # the official forward_with_cfg guides the first 3 eps channels only


def import_official(repo: str):
    if not os.path.isfile(os.path.join(repo, "models.py")) or not os.path.isdir(os.path.join(repo, "diffusion")):
        sys.exit(f"error: {repo} does not look like a facebookresearch/DiT checkout (models.py, diffusion/)")
    sys.path.insert(0, os.path.abspath(repo))
    try:
        from models import DiT_models  # noqa: the official code
        from diffusion import create_diffusion
    except ImportError as e:
        sys.exit(f"error: importing the official DiT code failed ({e}); it needs timm (pip install timm)")
    return DiT_models, create_diffusion


def load_tensor(path: str, name: str) -> torch.Tensor:
    from safetensors.torch import load_file
    if not os.path.isfile(path):
        sys.exit(f"error: {path} not found")
    tensors = load_file(path)
    if name not in tensors:
        sys.exit(f"error: {path} has no tensor {name!r} (has: {', '.join(tensors)})")
    return tensors[name].float()


def save_tensor(path: str, name: str, t: torch.Tensor) -> None:
    from safetensors.torch import save_file
    save_file({name: t.detach().float().contiguous()}, path)


def diff_stats(a: torch.Tensor, ref: torch.Tensor) -> dict:
    d = (a.double() - ref.double()).abs()
    return {"max_abs": d.max().item(), "max_ref": ref.abs().max().item(),
            "rel_max": (d.max() / ref.double().abs().max().clamp_min(1e-30)).item(),
            "rel_l2": ((a.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30)).item()}


def fmt(s: dict, base: str = "official") -> str:
    return (f"max abs {s['max_abs']:.3e} (max |{base}| {s['max_ref']:.4g}, rel-to-max {s['rel_max']:.2e}, "
            f"rel L2 {s['rel_l2']:.2e})")


@torch.no_grad()
def prepare(args) -> int:
    DiT_models, create_diffusion = import_official(args.dit_repo)
    wd = args.workdir
    os.makedirs(wd, exist_ok=True)
    L = args.latent_size
    labels = [int(v) for v in args.labels.split(",")]
    B = len(labels)
    if any(not 0 <= v < NUM_CLASSES for v in labels):
        sys.exit(f"error: labels must be in [0, {NUM_CLASSES})")

    # 1. official model with random non-zero weights (its zero init would hide adaLN / final-layer bugs)
    torch.manual_seed(args.seed)
    official = DiT_models[args.config](input_size=L, num_classes=NUM_CLASSES)
    g = torch.Generator().manual_seed(args.seed)
    for name, p in official.named_parameters():
        if name != "pos_embed":  # fixed sin-cos table, not a weight
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    official.eval()
    ckpt = os.path.join(wd, "official.pt")
    torch.save(official.state_dict(), ckpt)

    # 2. our converter, through its command line
    model_path = os.path.join(wd, "model.safetensors")
    training = json.dumps({"untrained": True, "init": f"normal(0, 0.02), seed {args.seed}",
                           "purpose": "official parity"})
    cmd = [sys.executable, os.path.join(SCRIPTS, "convert_dit_checkpoint.py"), ckpt, "--config", args.config,
           "--input-size", str(L), "--in-channels", str(IN_CHANNELS), "--num-classes", str(NUM_CLASSES),
           "--image-space", "latent", "--dtype", "f32", "--training", training,
           "--sampler", "ddim", "--steps", str(args.steps), "--cfg-scale", str(args.cfg_scale), "-o", model_path]
    subprocess.run(cmd, check=True)

    # 3. noise and labels
    noise = torch.randn(B, IN_CHANNELS, L, L, generator=torch.Generator().manual_seed(args.seed + 1))
    save_tensor(os.path.join(wd, "noise.safetensors"), "noise", noise)
    with open(os.path.join(wd, "labels.txt"), "w") as f:
        f.write(" ".join(map(str, labels)) + "\n")

    # 4. official sampling: DDIM eta 0, CFG through forward_with_cfg on the doubled batch
    diffusion = create_diffusion(str(args.steps))
    y = torch.tensor(labels, dtype=torch.int64)
    y_cfg = torch.cat([y, torch.full_like(y, NUM_CLASSES)])
    kwargs = dict(y=y_cfg, cfg_scale=args.cfg_scale)
    z = torch.cat([noise, noise])
    off = diffusion.ddim_sample_loop(official.forward_with_cfg, z.shape, z, clip_denoised=False,
                                     model_kwargs=kwargs, progress=False, device="cpu", eta=0.0)[:B]
    save_tensor(os.path.join(wd, "official_latents.safetensors"), "latents", off)

    # 5. our reference on the converted file (so the converter is covered too)
    ref, config, _ = load_model_file(model_path)
    report = {"config": args.config, "latent_size": L, "steps": args.steps, "cfg_scale": args.cfg_scale,
              "seed": args.seed, "labels": labels}
    # 5a. one forward pass at a few timesteps, labels including the null class
    gx = torch.Generator().manual_seed(args.seed + 2)
    x = torch.randn(3, IN_CHANNELS, L, L, generator=gx)
    t = torch.tensor([0, 500, 999])
    yy = torch.tensor([labels[0], NUM_CLASSES, labels[-1]])
    report["forward"] = diff_stats(ref(x, t, yy), official(x, t, yy))
    # 5b. DDIM eta 0 with CFG on the first 3 channels (what ditgen will be compared on)
    spaced = gd.GaussianDiffusion.spaced(args.steps, learn_sigma=True)
    fn = gd.guided_model(ref, y, args.cfg_scale, CFG_CHANNELS, NUM_CLASSES, IN_CHANNELS)
    ours = gd.sample_gaussian(fn, spaced, noise, "ddim", eta=0.0)
    save_tensor(os.path.join(wd, "reference_latents.safetensors"), "latents", ours)
    report["ddim_eta0_cfg"] = diff_stats(ours, off)
    # 5c. stochastic samplers: replay the official draws (randn_like on the doubled batch, global RNG)
    if not args.skip_stochastic:
        for label, sampler, eta in (("ddpm_cfg", "ddpm", 0.0), ("ddim_eta1_cfg", "ddim", 1.0)):
            torch.manual_seed(args.seed + 3)
            if sampler == "ddpm":
                o = diffusion.p_sample_loop(official.forward_with_cfg, z.shape, z, clip_denoised=False,
                                            model_kwargs=kwargs, progress=False, device="cpu")[:B]
            else:
                o = diffusion.ddim_sample_loop(official.forward_with_cfg, z.shape, z, clip_denoised=False,
                                               model_kwargs=kwargs, progress=False, device="cpu", eta=eta)[:B]
            torch.manual_seed(args.seed + 3)
            r = gd.sample_gaussian(fn, spaced, noise, sampler, eta=eta,
                                   noise_fn=lambda: torch.randn(z.shape)[:B])
            report[label] = diff_stats(r, o)
    with open(os.path.join(wd, "reference_check.json"), "w") as f:
        json.dump(report, f, indent=1)

    print(f"\nreference vs official ({args.config}, latent {L}, {args.steps} steps, cfg {args.cfg_scale}):")
    for k in ("forward", "ddim_eta0_cfg", "ddpm_cfg", "ddim_eta1_cfg"):
        if k in report:
            print(f"  {k:14s} {fmt(report[k])}")
    worst = max(report[k]["rel_max"] for k in ("forward", "ddim_eta0_cfg", "ddpm_cfg", "ddim_eta1_cfg")
                if k in report)
    print(f"\nwrote {wd}/{{official.pt, model.safetensors, noise.safetensors, labels.txt, "
          f"official_latents.safetensors, reference_latents.safetensors, reference_check.json}}")
    print("\nnext, run ditgen:")
    print(f"  {args.ditgen} generate -m {model_path} --sampler ddim --steps {args.steps} "
          f"--cfg-scale {args.cfg_scale:g} --cfg-channels {CFG_CHANNELS} "
          f"--init-noise {os.path.join(wd, 'noise.safetensors')} "
          f"--save-latents {os.path.join(wd, 'ditgen_latents.safetensors')} --device cpu --dtype fp32 "
          + " ".join(map(str, labels)))
    print(f"then: {sys.executable} {os.path.relpath(__file__)} --workdir {wd} compare")
    if worst > args.ref_tol:
        print(f"error: reference differs from the official code (rel-to-max {worst:.2e} > {args.ref_tol:g})",
              file=sys.stderr)
        return 1
    return 0


def compare(args) -> int:
    wd = args.workdir
    off = load_tensor(os.path.join(wd, "official_latents.safetensors"), "latents")
    dg = load_tensor(os.path.join(wd, "ditgen_latents.safetensors"), "latents")
    if dg.shape != off.shape:
        sys.exit(f"error: ditgen latents have shape {tuple(dg.shape)}, official {tuple(off.shape)}")
    s = diff_stats(dg, off)
    print(f"ditgen vs official:    {fmt(s)}")
    ref_path = os.path.join(wd, "reference_latents.safetensors")
    if os.path.isfile(ref_path):
        print(f"ditgen vs reference:   {fmt(diff_stats(dg, load_tensor(ref_path, 'latents')), 'reference')}")
    # With random weights the DDIM latents reach |x| ~ 1e2..1e3 (the model does not predict the noise, and
    # 1/sqrt(alpha_bar) at t=999 is ~158), so float32 roundoff alone gives max abs ~1e-4..1e-3 there
    # (about 5e-7 of max |x|). Hence the bound: max(tol, rel_tol * max |official|).
    bound = max(args.tol, args.rel_tol * s["max_ref"])
    ok = s["max_abs"] <= bound
    print(f"{'PASS' if ok else 'FAIL'}: max abs {s['max_abs']:.3e} {'<=' if ok else '>'} "
          f"max(tol {args.tol:g}, rel-tol {args.rel_tol:g} x max|official| {s['max_ref']:.4g}) = {bound:.3e}")
    return 0 if ok else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dit-repo", default="/tmp/DiT", help="checkout of facebookresearch/DiT (prepare only)")
    ap.add_argument("--config", default="DiT-S/2", choices=list(OFFICIAL_CONFIGS), metavar="NAME",
                    help="official model shape (default DiT-S/2)")
    ap.add_argument("--latent-size", type=int, default=32, help="latent side (default 32)")
    ap.add_argument("--steps", type=int, default=10, help="sampling steps (default 10)")
    ap.add_argument("--cfg-scale", type=float, default=4.0, help="guidance scale (default 4)")
    ap.add_argument("--seed", type=int, default=0, help="seed of weights and noise (default 0)")
    ap.add_argument("--labels", default="207,360,387,974", help="comma-separated class ids (batch)")
    ap.add_argument("--workdir", required=True, help="directory for all files")
    ap.add_argument("--ditgen", default="ditgen", help="ditgen binary shown in the printed command")
    ap.add_argument("--tol", type=float, default=1e-4, help="compare: max abs error allowed (default 1e-4)")
    ap.add_argument("--rel-tol", type=float, default=1e-5,
                    help="compare: also allowed: max abs <= rel-tol x max |official| (default 1e-5; 0 = off)")
    ap.add_argument("--ref-tol", type=float, default=1e-5,
                    help="prepare: max rel-to-max error allowed for the reference (default 1e-5)")
    ap.add_argument("--skip-stochastic", action="store_true", help="prepare: skip the DDPM / DDIM eta 1 checks")
    ap.add_argument("command", choices=["prepare", "compare"])
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(16, os.cpu_count() or 1)))
    return prepare(args) if args.command == "prepare" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
