#!/usr/bin/env python3
r"""Convert a Stable Diffusion VAE (AutoencoderKL) checkpoint into a ditgen VAE file (safetensors, diffusers names,
with the config in the metadata; docs/MODEL_FORMAT.md, "VAE files").

Accepted inputs (.safetensors, or .ckpt / .pt / .bin read with torch.load(weights_only=True)):
  - the original ldm / CompVis layout: a whole Stable Diffusion checkpoint (only its first_stage_model.* tensors are
    taken), or a bare VAE (encoder.* / decoder.* / quant_conv / post_quant_conv, e.g. vae-ft-mse-840000-ema-pruned);
    a training checkpoint's "state_dict" entry is looked into, and its loss.* (discriminator) tensors are dropped;
  - diffusers' layout (diffusion_pytorch_model.safetensors / .bin): names kept, the attention's older names
    (query / key / value / proj_attn) renamed to to_q / to_k / to_v / to_out.0.
The shape is read off the tensors; norm_num_groups and scaling_factor, which no tensor shows, come from
--diffusers-config (the config.json beside a diffusers file) or the flags (defaults: the SD-VAE's 32 and 0.18215).

Example:
  python scripts/convert_vae_checkpoint.py vae-ft-mse-840000-ema-pruned.safetensors -o sd-vae-ft-mse.safetensors
  python scripts/convert_vae_checkpoint.py sd-vae-ft-ema/diffusion_pytorch_model.safetensors \
      --diffusers-config sd-vae-ft-ema/config.json -o sd-vae-ft-ema.safetensors
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Dict, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_dit_checkpoint import DTYPES, ConversionError, save_safetensors  # noqa: E402

CONFIG_KEY = "ditgen.vae_config"
SD_PREFIX = "first_stage_model."
_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                       "BOOL": torch.bool}
_ATTENTION_LEGACY = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
_ATTENTION_LDM = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def read_safetensors(path: str) -> Dict[str, torch.Tensor]:
    """Every tensor of a safetensors file (read here: torch alone is needed)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ConversionError(f"{path}: too short for a safetensors file")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ConversionError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(data[8:8 + n])
    body = memoryview(data)[8 + n:]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        if entry["dtype"] not in _SAFETENSORS_DTYPES or not 0 <= begin <= end <= len(body):
            raise ConversionError(f"{path}: tensor {name!r} has an unknown dtype or lies outside the file")
        dtype = _SAFETENSORS_DTYPES[entry["dtype"]]
        flat = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype) if end > begin else torch.empty(0, dtype=dtype)
        out[name] = flat.reshape(entry["shape"])
    return out


def load_state(path: str) -> Dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        ckpt = ckpt["state_dict"]
    if not isinstance(ckpt, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise ConversionError(f"{path}: not a state dict of tensors")
    return ckpt


def vae_tensors(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The VAE's tensors alone: a whole SD checkpoint's first_stage_model.*, without a training run's loss.*."""
    if any(k.startswith(SD_PREFIX) for k in state):
        return {k[len(SD_PREFIX):]: v for k, v in state.items() if k.startswith(SD_PREFIX)}
    return {k: v for k, v in state.items() if not k.startswith("loss.")}


def is_ldm_layout(state: Dict[str, torch.Tensor]) -> bool:
    return any(re.match(r"(encoder|decoder)\.(down|up|mid)\.", k) for k in state)


def ldm_name(name: str, up_blocks: int) -> Tuple[str, bool]:
    """(diffusers name, whether the tensor is a 1x1 conv that becomes a linear) of an ldm name."""
    m = re.match(r"(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)$", name)
    if m:
        part = _ATTENTION_LDM[m.group(2)]
        return f"{m.group(1)}.mid_block.attentions.0.{part}.{m.group(3)}", part != "group_norm"
    rules = [
        (r"(encoder|decoder)\.mid\.block_(\d)\.", lambda m: f"{m.group(1)}.mid_block.resnets.{int(m.group(2)) - 1}."),
        (r"encoder\.down\.(\d+)\.block\.(\d+)\.", lambda m: f"encoder.down_blocks.{m.group(1)}.resnets.{m.group(2)}."),
        (r"encoder\.down\.(\d+)\.downsample\.", lambda m: f"encoder.down_blocks.{m.group(1)}.downsamplers.0."),
        # ldm numbers the decoder's levels from the full resolution up; diffusers in the order they run
        (r"decoder\.up\.(\d+)\.block\.(\d+)\.",
         lambda m: f"decoder.up_blocks.{up_blocks - 1 - int(m.group(1))}.resnets.{m.group(2)}."),
        (r"decoder\.up\.(\d+)\.upsample\.", lambda m: f"decoder.up_blocks.{up_blocks - 1 - int(m.group(1))}.upsamplers.0."),
        (r"(encoder|decoder)\.norm_out\.", lambda m: f"{m.group(1)}.conv_norm_out."),
    ]
    for pattern, replace in rules:
        m = re.match(pattern, name)
        if m:
            name = replace(m) + name[m.end():]
            break
    return name.replace(".nin_shortcut.", ".conv_shortcut."), False


def to_diffusers(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Tensors under diffusers' AutoencoderKL names, from either layout."""
    out = {}
    if is_ldm_layout(state):
        levels = {int(m.group(1)) for k in state for m in [re.match(r"decoder\.up\.(\d+)\.", k)] if m}
        for name, tensor in state.items():
            new, linear = ldm_name(name, len(levels))
            out[new] = tensor.reshape(tensor.shape[:2]) if linear and name.endswith(".weight") else tensor
    else:
        for name, tensor in state.items():
            m = re.match(r"(.*\.attentions\.0\.)(query|key|value|proj_attn)\.(weight|bias)$", name)
            out[f"{m.group(1)}{_ATTENTION_LEGACY[m.group(2)]}.{m.group(3)}" if m else name] = tensor
    return out


def config_from_tensors(t: Dict[str, torch.Tensor], groups: int, scaling: float, shift: float) -> dict:
    """The config of docs/MODEL_FORMAT.md read off diffusers-named tensors; ConversionError when one is missing."""
    def shape(name: str, axis: int) -> int:
        if name not in t or t[name].dim() <= axis:
            raise ConversionError(f"not an AutoencoderKL: tensor {name!r} missing or not a convolution's")
        return int(t[name].shape[axis])
    blocks = 0
    while f"decoder.up_blocks.{blocks}.resnets.0.conv1.weight" in t:
        blocks += 1
    if blocks == 0:
        shape("decoder.up_blocks.0.resnets.0.conv1.weight", 0)
    resnets = 0
    while f"decoder.up_blocks.0.resnets.{resnets}.conv1.weight" in t:
        resnets += 1
    encoder = "encoder.conv_in.weight" in t
    return {"block_out_channels": [shape(f"decoder.up_blocks.{blocks - 1 - i}.resnets.0.conv1.weight", 0)
                                   for i in range(blocks)],
            "layers_per_block": resnets - 1,
            "latent_channels": shape("decoder.conv_in.weight", 1),
            "in_channels": shape("encoder.conv_in.weight", 1) if encoder else 3,
            "out_channels": shape("decoder.conv_out.weight", 0),
            "norm_num_groups": groups, "scaling_factor": scaling, "shift_factor": shift,
            "mid_block_add_attention": "decoder.mid_block.attentions.0.to_q.weight" in t,
            "use_quant_conv": "quant_conv.weight" in t, "use_post_quant_conv": "post_quant_conv.weight" in t,
            "encoder": encoder}


def convert(path: str, groups: int, scaling: float, shift: float) -> Tuple[Dict[str, torch.Tensor], dict]:
    tensors = to_diffusers(vae_tensors(load_state(path)))
    not_float = sorted(k for k, v in tensors.items() if not torch.is_floating_point(v))
    if not_float:
        raise ConversionError(f"{path}: tensors that are not floating point: {', '.join(not_float[:10])}")
    return tensors, config_from_tensors(tensors, groups, scaling, shift)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="VAE or whole Stable Diffusion checkpoint (.safetensors, .ckpt, .pt, .bin)")
    ap.add_argument("-o", "--output", required=True, help="output .safetensors VAE file")
    ap.add_argument("--diffusers-config", metavar="JSON", help="diffusers config.json: norm_num_groups, scaling_factor, "
                    "shift_factor from it")
    ap.add_argument("--norm-groups", type=int, help="GroupNorm groups (default 32, the SD-VAE's)")
    ap.add_argument("--scaling-factor", type=float, help="latent scaling factor (default 0.18215, the SD-VAE's)")
    ap.add_argument("--shift-factor", type=float, help="latent shift (default 0)")
    ap.add_argument("--dtype", choices=list(DTYPES), default="f32", help="stored weight dtype (default f32)")
    args = ap.parse_args(argv)
    try:
        given = {}
        if args.diffusers_config:
            with open(args.diffusers_config, encoding="utf-8") as f:
                given = json.load(f)
        groups = args.norm_groups or given.get("norm_num_groups") or 32
        scaling = args.scaling_factor or given.get("scaling_factor") or 0.18215
        shift = args.shift_factor if args.shift_factor is not None else (given.get("shift_factor") or 0.0)
        tensors, config = convert(args.checkpoint, int(groups), float(scaling), float(shift))
        out = {k: v.to(DTYPES[args.dtype]).contiguous() for k, v in tensors.items()}
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        save_safetensors(args.output, out, {CONFIG_KEY: json.dumps(config)})
    except (ConversionError, OSError, json.JSONDecodeError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n = sum(v.numel() for v in out.values())
    print(f"wrote {args.output}: {len(out)} tensors, {n / 1e6:.2f} M parameters, {args.dtype}, blocks "
          f"{config['block_out_channels']}, latent channels {config['latent_channels']}, groups {groups}, "
          f"scaling {scaling:g}{'' if config['encoder'] else ', decoder only'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
