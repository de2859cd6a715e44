#!/usr/bin/env python3
"""Generate the golden tensors of the C++ tests into tests/data/golden/ (run from the repo root).

For each tiny model (random non-zero weights: DiT's zero init would hide bugs) it writes
  <name>.model.safetensors  a ditgen model file (F32, full metadata, training {"untrained": true})
  <name>.io.safetensors     forward-pass inputs/outputs (tensor list in its "ditgen.golden" metadata)
and diffusion.safetensors with respacing tables and complete sampling runs; the "ditgen.golden" metadata
entry of every file is a JSON object describing each tensor and run (seeds, labels, steps, ...).

Everything comes from scripts/reference/ (checked against the official DiT code by
scripts/parity/official_parity.py). Deterministic: fixed torch seeds, CPU, float32.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, HERE)
from dit_reference import load_model_file, make_model  # noqa: E402
import gaussian_diffusion as gd  # noqa: E402
from convert_dit_checkpoint import save_safetensors, write_model_file  # noqa: E402

WEIGHT_STD = 0.05

MODELS = {
    # eps model with learned sigma and the CFG null row: the shape of the official DiT, tiny
    "tiny_p2": dict(depth=2, hidden_size=64, num_heads=4, patch_size=2, mlp_ratio=4.0, in_channels=4,
                    input_size=[8, 8], num_classes=10, class_dropout_prob=0.1, learn_sigma=True,
                    objective="eps", image_space="latent", seed=1001),
    # flow model, non-square input, 1 channel, mlp_ratio 2, odd head count
    "tiny_p4_rect": dict(depth=2, hidden_size=48, num_heads=3, patch_size=4, mlp_ratio=2.0, in_channels=1,
                         input_size=[8, 16], num_classes=5, class_dropout_prob=0.1, learn_sigma=False,
                         objective="flow", image_space="pixel", seed=1002),
    # eps model with fixed (large) variance, no null row (no CFG possible), 3x5 token grid, depth 1
    "tiny_p2_fixed": dict(depth=1, hidden_size=32, num_heads=2, patch_size=2, mlp_ratio=4.0, in_channels=3,
                          input_size=[6, 10], num_classes=3, class_dropout_prob=0.0, learn_sigma=False,
                          objective="eps", image_space="pixel", seed=1003),
}
SAMPLER_DEFAULTS = {"eps": {"sampler": "ddim", "steps": 10, "cfg_scale": 4.0, "cfg_channels": 0},
                    "flow": {"sampler": "euler", "steps": 6, "cfg_scale": 3.0, "cfg_channels": 0}}

RNG_PROTOCOL = ("image i: g_i = torch.Generator().manual_seed(seed_i); x_T = torch.randn(C,H,W, generator=g_i) "
                "(float32). Stochastic samplers (ddpm, ddim eta>0) then draw one torch.randn(C,H,W, "
                "generator=g_i) per image for every step in sampling order, the final (masked) step included. "
                "Deterministic samplers (ddim eta=0, euler) draw nothing after x_T.")


def full_config(spec: dict) -> dict:
    cfg = {"architecture": "dit"}
    for k in ("depth", "hidden_size", "num_heads", "patch_size", "mlp_ratio", "in_channels", "input_size",
              "num_classes", "class_dropout_prob", "learn_sigma", "objective"):
        cfg[k] = spec[k]
    if spec["objective"] == "eps":
        cfg["diffusion_steps"] = 1000
        cfg["beta_schedule"] = "linear"
    cfg["image_space"] = spec["image_space"]
    return cfg


def build_random_model(spec: dict):
    config = full_config(spec)
    model = make_model(config)
    g = torch.Generator().manual_seed(spec["seed"])
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * WEIGHT_STD)
    return model.eval(), config


def save(path: str, tensors: dict, golden_meta: dict) -> None:
    save_safetensors(path, tensors, {"ditgen.golden": json.dumps(golden_meta, indent=1)})


def describe(tensors: dict) -> dict:
    return {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in tensors.items()}


@torch.no_grad()
def forward_io(name: str, model, config: dict, gen: torch.Generator) -> (dict, dict):
    C = config["in_channels"]
    H, W = config["input_size"]
    p = config["patch_size"]
    null = config["num_classes"] if config["class_dropout_prob"] > 0 else None
    ncls = config["num_classes"]
    io = {}
    io["x"] = torch.randn(3, C, H, W, generator=gen)
    io["t"] = torch.tensor([0, 499, 999], dtype=torch.int64)
    io["y"] = torch.tensor([1 % ncls, null if null is not None else 0, ncls - 1], dtype=torch.int64)
    io["out"] = model(io["x"], io["t"], io["y"])
    io["pos_embed"] = model.pos_embed(H // p, W // p)
    # intermediates, to localise a mismatch
    io["cond"] = model.conditioning(io["t"], io["y"])            # t_emb + y_emb, [3, D]
    io["tokens"] = model.embed(io["x"])                           # patch embedding + pos_embed, [3, N, D]
    notes = {
        "x": "input [3,C,H,W]", "t": "int64 timesteps", "y": "class ids (null id = num_classes where present)",
        "out": "model(x, t, y) [3,out_channels,H,W]", "pos_embed": "[1, (H/p)*(W/p), D]",
        "cond": "t_embedder(t) + y_embedder(y) [3,D]", "tokens": "x_embedder(x) + pos_embed [3,N,D]",
    }
    if config["objective"] == "flow":
        io["t_float"] = torch.tensor([0.0, 333.25, 1000.0], dtype=torch.float32)
        io["out_float"] = model(io["x"], io["t_float"], io["y"])
        notes["t_float"] = "float32 timesteps (flow models see t*1000)"
        notes["out_float"] = "model(x, t_float, y)"
    # a second, different input size: the pos_embed must be recomputed for it
    Ha, Wa = (H + 2 * p, max(p, W - p)) if H == W else (W, H)
    io["x_alt"] = torch.randn(2, C, Ha, Wa, generator=gen)
    io["t_alt"] = torch.tensor([10, 750], dtype=torch.int64)
    io["y_alt"] = torch.tensor([0, ncls - 1], dtype=torch.int64)
    io["out_alt"] = model(io["x_alt"], io["t_alt"], io["y_alt"])
    io["pos_embed_alt"] = model.pos_embed(Ha // p, Wa // p)
    notes["x_alt"] = f"input at another size {Ha}x{Wa}; t_alt, y_alt, out_alt, pos_embed_alt as above"
    meta = {"model": f"{name}.model.safetensors", "config": config, "notes": notes, "tensors": describe(io)}
    return io, meta


def run_sampling(model, config, seeds, labels, sampler, steps, cfg_scale, cfg_channels, eta=0.0):
    """Returns (initial noise, x after the first step, final x) following the RNG protocol."""
    C = config["in_channels"]
    H, W = config["input_size"]
    null = config["num_classes"] if config["class_dropout_prob"] > 0 else None
    gens = gd.make_generators(seeds)
    x_T = gd.draw_noise(gens, (C, H, W))
    y = torch.tensor(labels, dtype=torch.int64)
    fn = gd.guided_model(model, y, cfg_scale, cfg_channels, null, C)
    trace = []
    if sampler == "euler":
        x = gd.sample_flow_euler(fn, x_T, steps, trace=trace)
    else:
        diff = gd.GaussianDiffusion.spaced(steps, config["learn_sigma"], config.get("diffusion_steps", 1000))
        x = gd.sample_gaussian(fn, diff, x_T, sampler, eta=eta, gens=gens, trace=trace)
    return x_T, trace[0], x


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=os.path.join("tests", "data", "golden"),
                    help="output directory (default tests/data/golden)")
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)  # fixed reduction order, so reruns reproduce the files bit for bit

    models = {}
    for name, spec in MODELS.items():
        model, config = build_random_model(spec)
        path = os.path.join(args.out_dir, f"{name}.model.safetensors")
        class_names = [f"{name}-class-{i}" for i in range(config["num_classes"])]
        training = {"untrained": True, "init": f"normal(0, {WEIGHT_STD}) every parameter, seed {spec['seed']}",
                    "purpose": "ditgen golden tests"}
        write_model_file(path, dict(model.state_dict()), config, name, SAMPLER_DEFAULTS[config["objective"]],
                         training, class_names)
        # the written file must reproduce the in-memory model exactly
        model, config_rt, _ = load_model_file(path)
        assert config_rt == config
        models[name] = (model, config)
        io, meta = forward_io(name, model, config, torch.Generator().manual_seed(spec["seed"] + 100))
        save(os.path.join(args.out_dir, f"{name}.io.safetensors"), io, meta)

    # ---- diffusion tables and sampling runs ---------------------------------------------------------------
    diff_t, runs = {}, {}
    for K in (1, 10, 25, 250):
        diff_t[f"timestep_map_{K}"] = torch.tensor(gd.space_timesteps(1000, K), dtype=torch.int64)
    d10 = gd.GaussianDiffusion.spaced(10, learn_sigma=True)
    diff_t["betas_10"] = torch.from_numpy(d10.betas.copy())
    diff_t["alphas_cumprod_10"] = torch.from_numpy(d10.alphas_cumprod.copy())
    diff_t["posterior_log_variance_clipped_10"] = torch.from_numpy(d10.posterior_log_variance_clipped.copy())
    diff_t["betas_1000"] = torch.from_numpy(gd.linear_betas(1000))

    run_specs = [
        # name, model, sampler, eta, steps, cfg_scale, cfg_channels, seeds, labels, noise tensor name
        ("ddim_cfg4_ch3", "tiny_p2", "ddim", 0.0, 10, 4.0, 3, [7, 8], [1, 7], "init_noise"),
        ("ddim_cfg4_all", "tiny_p2", "ddim", 0.0, 10, 4.0, 0, [7, 8], [1, 7], "init_noise"),
        ("ddim_eta1_nocfg", "tiny_p2", "ddim", 1.0, 10, 1.0, 0, [7, 8], [1, 7], "init_noise"),
        ("ddpm_cfg2", "tiny_p2", "ddpm", 0.0, 10, 2.0, 0, [7, 8], [1, 7], "init_noise"),
        ("euler_cfg3", "tiny_p4_rect", "euler", 0.0, 6, 3.0, 0, [7, 8], [0, 4], "init_noise_rect"),
        ("ddpm_fixedlarge_nocfg", "tiny_p2_fixed", "ddpm", 0.0, 10, 1.0, 0, [7, 8], [0, 2], "init_noise_fixed"),
    ]
    for name, mname, sampler, eta, steps, cfg, cch, seeds, labels, noise_name in run_specs:
        model, config = models[mname]
        x_T, x1, x = run_sampling(model, config, seeds, labels, sampler, steps, cfg, cch, eta)
        if noise_name in diff_t:
            assert torch.equal(diff_t[noise_name], x_T), "runs sharing a noise tensor must share seeds"
        diff_t[noise_name] = x_T
        diff_t[name] = x
        diff_t[f"{name}_step1"] = x1
        runs[name] = {"model": f"{mname}.model.safetensors", "objective": config["objective"],
                      "sampler": sampler, "eta": eta, "steps": steps, "cfg_scale": cfg, "cfg_channels": cch,
                      "seeds": seeds, "labels": labels, "init_noise": noise_name, "final": name,
                      "after_first_step": f"{name}_step1", "shape": list(x.shape)}
        if sampler != "euler":
            runs[name]["timestep_map"] = gd.space_timesteps(1000, steps)
    meta = {
        "rng_protocol": RNG_PROTOCOL,
        "cfg": ("cfg_scale == 1: conditional model only (batch B). Otherwise one model call on cat([x, x]) with "
                "labels cat([y, null]); guided = u + s*(c-u) on the first cfg_channels eps channels (0 = all "
                "in_channels); other eps channels and the variance channels from the conditional half."),
        "gaussian": ("linear betas over 1000 steps, respaced like the official space_timesteps(1000, str(K)); "
                     "the model sees timestep_map[t] (int64). Coefficients: float64 lookup, cast to float32, "
                     "then multiplied. No clipping of pred_xstart. learn_sigma: learned-range variance; "
                     "otherwise fixed-large."),
        "flow": ("Euler, t_k = 1 - k/K (double); model timestep float32(t_k*1000); "
                 "x <- x + float32(t_{k+1}-t_k) * v."),
        "timestep_maps": {f"timestep_map_{K}": {"num_timesteps": 1000, "steps": K} for K in (1, 10, 25, 250)},
        "tables": {"betas_10": "respaced betas, K=10 (float64)", "alphas_cumprod_10": "respaced, K=10",
                   "posterior_log_variance_clipped_10": "respaced, K=10", "betas_1000": "base linear betas"},
        "runs": runs,
        "tensors": describe(diff_t),
    }
    save(os.path.join(args.out_dir, "diffusion.safetensors"), diff_t, meta)

    total = 0
    for f in sorted(os.listdir(args.out_dir)):
        size = os.path.getsize(os.path.join(args.out_dir, f))
        total += size
        print(f"{size:>9}  {os.path.join(args.out_dir, f)}")
    print(f"{total:>9}  total")
    if total >= 4 * 1024 * 1024:  # every test's golden files together, this script's and the others'
        print("error: golden files exceed 4 MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
