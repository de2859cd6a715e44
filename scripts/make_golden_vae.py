#!/usr/bin/env python3
"""Golden tensors of the VAE tests, from diffusers' own AutoencoderKL (run from the repo root). Writes into
tests/data/golden/:

  vae_tiny.safetensors      a random AutoencoderKL in diffusers' layout with its ditgen config in the metadata:
                            block_out_channels (8, 16, 16), layers_per_block 1, latent 4, norm_num_groups 4,
                            scaling_factor 0.5 (upscale 4); convolutions ~ N(0, 1/fan_in), norms ~ 1 + N(0, 0.1)
  vae_tiny_ldm.safetensors  the same weights in the original ldm layout inside a whole-checkpoint dict
                            (first_stage_model.* plus one unrelated tensor), from an inverse mapping written here
                            apart from scripts/convert_vae_checkpoint.py, which must turn it back into vae_tiny
  vae.safetensors           decode: latents z [2, 4, 6, 5] -> decoded [2, 3, 24, 20] (diffusers' vae.decode(z),
                            unscaled, unclamped); encode: images x [2, 3, 16, 12] -> mean, logvar [2, 4, 4, 3];
                            tiling: a DiT's latents [1, 4, 24, 24] (VAE latents x 0.5), and in the metadata how far
                            diffusers' own tiled decoding (tiles of TILES latents, overlap factor 0.25) lands from
                            its whole decoding (max and mean abs of the clamped images), the yardstick of ditgen's
                            tiling

diffusers is not one of ditgen's dependencies; install it beside the project venv, not into it:
  /root/.cache/ditgen/venv/bin/python -m pip install --target /tmp/diffusers-pkgs --no-deps diffusers \\
      huggingface_hub httpx2 httpcore2 anyio idna truststore h11 sniffio certifi importlib_metadata zipp regex \\
      requests charset_normalizer urllib3 tqdm pyyaml packaging click fsspec Pillow
  PYTHONPATH=/tmp/diffusers-pkgs /root/.cache/ditgen/venv/bin/python scripts/make_golden_vae.py

Deterministic: fixed seeds, CPU, float32, one thread; reruns give identical bytes.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
sys.path.insert(0, HERE)
from golden_common import randomize  # noqa: E402
from convert_dit_checkpoint import save_safetensors  # noqa: E402
from convert_vae_checkpoint import CONFIG_KEY, read_safetensors  # noqa: E402
from make_golden import describe  # noqa: E402

GOLDEN = os.path.join("tests", "data", "golden")
SEED = 3030
TILES = [8, 16]
CONFIG = {"block_out_channels": [8, 16, 16], "layers_per_block": 1, "latent_channels": 4, "in_channels": 3,
          "out_channels": 3, "norm_num_groups": 4, "scaling_factor": 0.5, "shift_factor": 0.0,
          "mid_block_add_attention": True, "use_quant_conv": True, "use_post_quant_conv": True, "encoder": True}


def make_vae():
    from diffusers import AutoencoderKL
    blocks = len(CONFIG["block_out_channels"])
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * blocks,
                         up_block_types=("UpDecoderBlock2D",) * blocks,
                         block_out_channels=tuple(CONFIG["block_out_channels"]),
                         layers_per_block=CONFIG["layers_per_block"], latent_channels=CONFIG["latent_channels"],
                         norm_num_groups=CONFIG["norm_num_groups"], scaling_factor=CONFIG["scaling_factor"]).eval()


def weight_rule(name, p, g):
    """Norm scales near 1 (a GroupNorm weight of ~0 would hide its input); weights of fan-in n ~ N(0, 1/n), so
    activations keep their scale through the blocks; biases ~ N(0, 0.1)."""
    if p.dim() == 1:
        return torch.randn(p.shape, generator=g) * 0.1 + (1.0 if "norm" in name and name.endswith("weight") else 0.0)
    return torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5


def to_ldm(state):
    """diffusers -> ldm names, written from the ldm Encoder/Decoder's attribute names (not from the converter)."""
    levels = len(CONFIG["block_out_channels"])
    out = {}
    for name, t in state.items():
        new = name.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        new = re.sub(r"mid_block\.resnets\.(\d)", lambda m: f"mid.block_{int(m.group(1)) + 1}", new)
        new = re.sub(r"down_blocks\.(\d+)\.resnets\.", r"down.\1.block.", new)
        new = re.sub(r"down_blocks\.(\d+)\.downsamplers\.0\.", r"down.\1.downsample.", new)
        new = re.sub(r"up_blocks\.(\d+)\.resnets\.", lambda m: f"up.{levels - 1 - int(m.group(1))}.block.", new)
        new = re.sub(r"up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"up.{levels - 1 - int(m.group(1))}.upsample.", new)
        attention = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
        m = re.match(r"(.*)mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(weight|bias)$", new)
        if m:
            new = f"{m.group(1)}mid.attn_1.{attention[m.group(2)]}.{m.group(3)}"
            if m.group(2) != "group_norm" and m.group(3) == "weight":
                t = t.reshape(*t.shape, 1, 1)  # the ldm attention's q, k, v and proj_out are 1x1 convolutions
        out["first_stage_model." + new] = t.contiguous()
    out["model.diffusion_model.out.2.bias"] = torch.zeros(4)  # a whole checkpoint holds the UNet too
    return out


def check_converter(ldm_path: str, state) -> None:
    """The converter turns the ldm file back into the diffusers tensors and the config, exactly."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "vae.safetensors")
        subprocess.run([sys.executable, os.path.join(HERE, "convert_vae_checkpoint.py"), ldm_path, "-o", out,
                        "--norm-groups", str(CONFIG["norm_num_groups"]), "--scaling-factor",
                        str(CONFIG["scaling_factor"])], check=True, stdout=subprocess.DEVNULL)
        converted = read_safetensors(out)
        with open(out, "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    if sorted(converted) != sorted(state) or any(not torch.equal(converted[k], state[k]) for k in state):
        sys.exit("error: the converter did not give back the diffusers tensors")
    if json.loads(header["__metadata__"][CONFIG_KEY]) != CONFIG:
        sys.exit("error: the converter's config differs from the golden one")


def diffusers_tiling_error(vae, latents) -> dict:
    """Per tile size: max and mean abs difference of diffusers' tiled decoding from its whole decoding."""
    upscale = 2 ** (len(CONFIG["block_out_channels"]) - 1)
    z = latents / CONFIG["scaling_factor"]
    whole = vae.decode(z).sample.clamp(-1, 1)
    errors = {}
    for tile in TILES:
        vae.enable_tiling()
        vae.tile_latent_min_size, vae.tile_sample_min_size, vae.tile_overlap_factor = tile, tile * upscale, 0.25
        d = (vae.tiled_decode(z).sample.clamp(-1, 1) - whole).abs()
        vae.disable_tiling()
        errors[str(tile)] = {"max_abs": d.max().item(), "mean_abs": d.mean().item()}
    return errors


@torch.no_grad()
def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    vae = make_vae()
    randomize(vae, SEED, 0.0, weight_rule)
    state = {k: v.contiguous() for k, v in vae.state_dict().items()}
    save_safetensors(os.path.join(GOLDEN, "vae_tiny.safetensors"), state, {CONFIG_KEY: json.dumps(CONFIG)})
    ldm_path = os.path.join(GOLDEN, "vae_tiny_ldm.safetensors")
    save_safetensors(ldm_path, to_ldm(state))
    check_converter(ldm_path, state)

    g = torch.Generator().manual_seed(SEED + 1)
    z = torch.randn(2, CONFIG["latent_channels"], 6, 5, generator=g)
    x = torch.rand(2, 3, 16, 12, generator=g) * 2 - 1
    dist = vae.encode(x).latent_dist
    tiling = torch.randn(1, CONFIG["latent_channels"], 24, 24, generator=g) * CONFIG["scaling_factor"]
    out = {"decode.z": z, "decode.out": vae.decode(z).sample, "encode.x": x, "encode.mean": dist.mean,
           "encode.logvar": dist.logvar, "tiling.latents": tiling}
    import diffusers
    meta = {"diffusers": diffusers.__version__, "torch": torch.__version__, "config": CONFIG, "tensors": describe(out),
            "tiling": diffusers_tiling_error(vae, tiling)}
    save_safetensors(os.path.join(GOLDEN, "vae.safetensors"), {k: v.contiguous() for k, v in out.items()},
                     {"ditgen.golden": json.dumps(meta, indent=1)})


if __name__ == "__main__":
    main()
