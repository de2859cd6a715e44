#!/usr/bin/env python3
r"""Convert an official-format DiT checkpoint (.pt) into a self-describing ditgen model file (safetensors).

Accepted inputs: a plain state dict (the released DiT-XL-2-*.pt files), or a training checkpoint dict with
"ema" and/or "model" entries ("ema" is preferred; --use-model takes "model"). Every expected tensor must be
present with the right shape; the stored pos_embed is dropped (ditgen recomputes it for every input size).
See docs/MODEL_FORMAT.md for the output layout.

Example:
  python scripts/convert_dit_checkpoint.py DiT-XL-2-256x256.pt --config DiT-XL/2 --input-size 32 --dtype f16 \
      -o dit-xl-2-256.safetensors
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
from dit_reference import OFFICIAL_CONFIGS, make_model, official_config  # noqa: E402

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
OFFICIAL_SAMPLER_DEFAULTS = {"sampler": "ddpm", "steps": 250, "cfg_scale": 4.0, "cfg_channels": 3}
IGNORED_KEYS = {"pos_embed"}  # fixed sin-cos table; not stored in ditgen files


class ConversionError(Exception):
    pass


def expected_shapes(config: dict) -> Dict[str, torch.Size]:
    """Tensor name -> shape of a ditgen/official DiT with this config (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = make_model(config)
    return {k: v.shape for k, v in model.state_dict().items()}


def check_state_dict(state: Dict[str, torch.Tensor], config: dict) -> Dict[str, torch.Tensor]:
    """Returns the tensors to store (pos_embed removed); raises ConversionError listing every problem."""
    want = expected_shapes(config)
    missing = sorted(k for k in want if k not in state)
    unexpected = sorted(k for k in state if k not in want and k not in IGNORED_KEYS)
    bad_shape = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs expected {tuple(want[k])}"
                       for k in want if k in state and tuple(state[k].shape) != tuple(want[k]))
    not_float = sorted(k for k in want if k in state and not torch.is_floating_point(state[k]))
    if missing or unexpected or bad_shape or not_float:
        lines = [f"checkpoint does not match config (depth {config['depth']}, hidden {config['hidden_size']}, "
                 f"patch {config['patch_size']}, in_channels {config['in_channels']}, "
                 f"num_classes {config['num_classes']}, learn_sigma {config['learn_sigma']}):"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", bad_shape),
                             ("not floating point", not_float)):
            if items:
                lines.append(f"  {title} ({len(items)}):")
                lines.extend(f"    {s}" for s in items)
        raise ConversionError("\n".join(lines))
    return {k: state[k] for k in want}


_ST_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
              torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
              torch.bool: "BOOL"}


def save_safetensors(path: str, tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None) -> None:
    """Writes a safetensors file with a deterministic header (sorted keys), so regenerated files are
    byte-identical (the safetensors package serialises the metadata map in hash order).
    Tensors are laid out by decreasing element size, then name, so each one is aligned to its element size."""
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header: Dict[str, object] = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ConversionError("safetensors metadata must map strings to strings")
        header["__metadata__"] = dict(sorted(metadata.items()))
    blobs, offset = [], 0
    for name in order:
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in _ST_DTYPES:
            raise ConversionError(f"{name}: dtype {t.dtype} not supported")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hbytes = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hbytes += b" " * (-len(hbytes) % 8)  # data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(len(hbytes).to_bytes(8, "little"))
        f.write(hbytes)
        for b in blobs:
            f.write(b)


def write_model_file(path: str, tensors: Dict[str, torch.Tensor], config: dict, name: str,
                     sampler_defaults: dict, training: dict, class_names: Optional[List[str]] = None,
                     dtype: torch.dtype = torch.float32) -> None:
    """Writes a ditgen model file: the tensors cast to dtype plus the ditgen.* metadata of MODEL_FORMAT.md."""
    if class_names is not None and len(class_names) != int(config["num_classes"]):
        raise ConversionError(f"{len(class_names)} class names given for {config['num_classes']} classes")
    meta = {
        "ditgen.format": "1",
        "ditgen.name": name,
        "ditgen.config": json.dumps(config),
        "ditgen.sampler_defaults": json.dumps(sampler_defaults),
        "ditgen.training": json.dumps(training),
    }
    if class_names is not None:
        meta["ditgen.class_names"] = json.dumps(class_names, ensure_ascii=False)
    out = {k: v.detach().to("cpu", dtype).contiguous() for k, v in tensors.items()}
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    save_safetensors(path, out, meta)


def load_checkpoint(path: str, use_model: bool, trust: bool) -> (Dict[str, torch.Tensor], str):
    """Returns (state dict, which part was taken: 'ema' / 'model' / 'state_dict')."""
    try:
        if trust:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        else:
            # official training checkpoints also hold "args", an argparse.Namespace: harmless, so allow it
            with torch.serialization.safe_globals([argparse.Namespace]):
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses other pickled objects
        if trust:
            raise
        why = [l.strip() for l in str(e).splitlines() if "Unsupported global" in l] or [str(e).splitlines()[0]]
        raise ConversionError(f"could not load {path} with torch.load(weights_only=True): {why[0]}\n"
                              "If you trust the file, re-run with --trust-checkpoint.")
    if not isinstance(ckpt, dict):
        raise ConversionError(f"{path}: expected a dict, got {type(ckpt).__name__}")
    if use_model:
        if "model" not in ckpt:
            raise ConversionError(f"--use-model given but {path} has no 'model' entry "
                                  f"(top-level keys: {sorted(ckpt)[:10]})")
        state, part = ckpt["model"], "model"
    elif "ema" in ckpt:
        state, part = ckpt["ema"], "ema"
    elif "model" in ckpt:
        state, part = ckpt["model"], "model"
    else:
        state, part = ckpt, "state_dict"
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path}: '{part}' is not a state dict of tensors "
                              f"(keys: {sorted(map(str, state))[:10] if isinstance(state, dict) else '?'})")
    # checkpoints saved from a DistributedDataParallel wrapper prefix every name with "module."
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state, part


def parse_size(s: str) -> List[int]:
    parts = s.lower().replace("*", "x").split("x")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {s!r}: use N or HxW")
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or min(vals) <= 0:
        raise argparse.ArgumentTypeError(f"bad size {s!r}: use N or HxW")
    return vals


def read_class_names(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        names = [line.rstrip("\r\n") for line in f]
    while names and names[-1] == "":  # tolerate trailing blank lines
        names.pop()
    return names


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="official-format DiT .pt file")
    ap.add_argument("-o", "--output", required=True, help="output .safetensors model file")
    ap.add_argument("--config", required=True, choices=list(OFFICIAL_CONFIGS), metavar="NAME",
                    help="model shape, e.g. DiT-XL/2 (one of: %(choices)s)")
    ap.add_argument("--input-size", type=parse_size, default=[32, 32],
                    help="training input size (latent side N, or HxW); 32 for 256px images (default 32)")
    ap.add_argument("--in-channels", type=int, default=4, help="input channels (default 4: SD-VAE latents)")
    ap.add_argument("--num-classes", type=int, default=1000, help="number of classes (default 1000)")
    ap.add_argument("--class-dropout-prob", type=float, default=0.1,
                    help="training label dropout; > 0 means the table has the null row (default 0.1)")
    ap.add_argument("--no-learn-sigma", action="store_true", help="model outputs eps only (not official)")
    ap.add_argument("--image-space", choices=["latent", "pixel"], default="latent")
    ap.add_argument("--dtype", choices=list(DTYPES), default="f32", help="stored weight dtype (default f32)")
    ap.add_argument("--class-names", metavar="FILE", help="text file with one class name per line")
    ap.add_argument("--name", help="display name (default: the config name)")
    ap.add_argument("--use-model", action="store_true", help="take 'model' rather than 'ema' weights")
    ap.add_argument("--trust-checkpoint", action="store_true",
                    help="let torch.load unpickle arbitrary objects (only for files you trust)")
    ap.add_argument("--training", metavar="JSON", help="ditgen.training object (default: source facts)")
    ap.add_argument("--sampler", choices=["ddpm", "ddim"], default=OFFICIAL_SAMPLER_DEFAULTS["sampler"])
    ap.add_argument("--steps", type=int, default=OFFICIAL_SAMPLER_DEFAULTS["steps"])
    ap.add_argument("--cfg-scale", type=float, default=OFFICIAL_SAMPLER_DEFAULTS["cfg_scale"])
    ap.add_argument("--cfg-channels", type=int, default=OFFICIAL_SAMPLER_DEFAULTS["cfg_channels"],
                    help="guided eps channels, 0 = all (official DiT guides 3)")
    args = ap.parse_args(argv)

    try:
        config = official_config(args.config, args.input_size, args.in_channels, args.num_classes,
                                 args.image_space)
        config["class_dropout_prob"] = args.class_dropout_prob
        config["learn_sigma"] = not args.no_learn_sigma
        if config["hidden_size"] % 4:
            raise ConversionError("hidden_size must be divisible by 4")
        p = config["patch_size"]
        if config["input_size"][0] % p or config["input_size"][1] % p:
            raise ConversionError(f"input size {config['input_size']} not divisible by patch {p}")
        class_names = read_class_names(args.class_names) if args.class_names else None
        if class_names is not None and len(class_names) != args.num_classes:
            raise ConversionError(f"{args.class_names}: {len(class_names)} names for {args.num_classes} classes")
        state, part = load_checkpoint(args.checkpoint, args.use_model, args.trust_checkpoint)
        tensors = check_state_dict(state, config)
        if args.training:
            training = json.loads(args.training)
            if not isinstance(training, dict):
                raise ConversionError("--training must be a JSON object")
        else:
            training = {"source": "facebookresearch/DiT checkpoint", "file": os.path.basename(args.checkpoint),
                        "weights": part}
        sampler_defaults = {"sampler": args.sampler, "steps": args.steps, "cfg_scale": args.cfg_scale,
                            "cfg_channels": args.cfg_channels}
        write_model_file(args.output, tensors, config, args.name or args.config, sampler_defaults, training,
                         class_names, DTYPES[args.dtype])
    except (ConversionError, OSError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n = sum(t.numel() for t in tensors.values())
    print(f"wrote {args.output}: {len(tensors)} tensors, {n / 1e6:.2f} M parameters, {args.dtype}, "
          f"weights '{part}', config {args.config} input {config['input_size'][0]}x{config['input_size'][1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
