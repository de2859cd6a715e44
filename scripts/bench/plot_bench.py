#!/usr/bin/env python3
"""Plots of benchmark JSON lines (from scripts/bench/torch_reference.py and `ditgen bench --json`).

Every input line is one JSON object with the shared keys (tool, path, kind, model, height, width, batch, dtype,
device, attention, ms, ...); blank lines are skipped. Each plot is a subcommand:

  scaling   ms per forward vs batch (at the most common size) and vs resolution (at the batch measured at
            the most sizes), one line per (tool, path); kind=forward rows only.

  python scripts/bench/plot_bench.py scaling out/torch.jsonl out/ditgen.jsonl -o docs/perf-scaling.png

To add a plot, write a cmd_<name>(args, rows) function and register it with its options in COMMANDS.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter, defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator  # noqa: E402


# ---------------------------------------------------------------------------------------------------------
# Loading, filtering, grouping (shared by every plot)
# ---------------------------------------------------------------------------------------------------------

def load_rows(paths):
    rows = []
    for path in paths:
        try:
            with open(path) as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        sys.exit(f"error: {path}:{n}: not a JSON object ({e})")
                    if not isinstance(row, dict):
                        sys.exit(f"error: {path}:{n}: not a JSON object")
                    rows.append(row)
        except OSError as e:
            sys.exit(f"error: cannot read {path}: {e.strerror}")
    return rows


def select(rows, args, **fixed):
    """Rows matching the fixed key values and the --model/--dtype/--device/--tool filters given."""
    want = dict(fixed)
    for key in ("model", "dtype", "device", "tool"):
        if getattr(args, key, None):
            want[key] = getattr(args, key)
    return [r for r in rows if all(r.get(k) == v for k, v in want.items())]


def distinct(rows, key):
    return ", ".join(sorted({str(r.get(key)) for r in rows}))


def series_labels(rows):
    """Label of each row's line: 'tool path', plus the attention kind when one (tool, path) has several."""
    families = defaultdict(set)
    for r in rows:
        families[(r.get("tool"), r.get("path"))].add(str(r.get("attention")).split(":")[0])
    labels = []
    for r in rows:
        label = f"{r.get('tool')} {r.get('path')}"
        if len(families[(r.get("tool"), r.get("path"))]) > 1:
            label += f" ({str(r.get('attention')).split(':')[0]})"
        labels.append(label)
    return labels


def series(rows, x_of, y_key="ms"):
    """{label: [(x, y), ...] sorted by x}; repeated measurements of one point are reduced to their median."""
    points = defaultdict(lambda: defaultdict(list))
    for r, label in zip(rows, series_labels(rows)):
        if r.get(y_key) is not None:
            points[label][x_of(r)].append(float(r[y_key]))
    return {label: sorted((x, statistics.median(ys)) for x, ys in xs.items()) for label, xs in points.items()}


def style_of(labels):
    """One colour per label (stable across panels); ditgen solid, other tools dashed."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^v<>pX*"
    return {lab: dict(color=colors[i % len(colors)], marker=markers[i % len(markers)],
                      linestyle="-" if lab.startswith("ditgen") else "--")
            for i, lab in enumerate(sorted(labels))}


def draw(ax, lines, styles, title, xlabel, ylabel="ms per forward (median)"):
    for label, pts in sorted(lines.items()):
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, linewidth=1.8, markersize=5,
                **styles[label])
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.tick_params(axis="y", which="minor", labelsize=8)
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)
    if lines:
        ax.legend(fontsize=9)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")


def fixed_ticks(ax, values):
    ticks = sorted(set(values))
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:g}" for t in ticks])


# ---------------------------------------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------------------------------------

def cmd_scaling(args, rows):
    fwd = select(rows, args, kind="forward")
    if not fwd:
        sys.exit("error: no kind=forward rows (after filters) in the input")
    for key in ("model", "dtype", "device"):
        if len({r.get(key) for r in fwd}) > 1:
            print(f"warning: rows of several {key}s ({distinct(fwd, key)}); filter with --{key}", file=sys.stderr)

    size = Counter((r["height"], r["width"]) for r in fwd).most_common(1)[0][0]
    left = series([r for r in fwd if (r["height"], r["width"]) == size], lambda r: r["batch"])

    sizes_per_batch = defaultdict(set)
    for r in fwd:
        sizes_per_batch[r["batch"]].add((r["height"], r["width"]))
    rows_per_batch = Counter(r["batch"] for r in fwd)
    batch = max(sizes_per_batch, key=lambda b: (len(sizes_per_batch[b]), rows_per_batch[b], b))
    px = lambda r: round((r["height"] * r["width"]) ** 0.5 * args.vae_factor)  # noqa: E731 (square: H*8)
    right = series([r for r in fwd if r["batch"] == batch], px)

    styles = style_of(set(left) | set(right))
    fig, (ax_b, ax_r) = plt.subplots(1, 2, figsize=(13, 5))
    f = args.vae_factor
    draw(ax_b, left, styles, f"vs batch at {size[0] * f}x{size[1] * f} px ({size[0]}x{size[1]} latent)",
         "batch (images)")
    ax_b.set_xscale("log", base=2)
    fixed_ticks(ax_b, [x for pts in left.values() for x, _ in pts])
    draw(ax_r, right, styles, f"vs resolution at batch {batch}", "resolution (px)")
    fixed_ticks(ax_r, [x for pts in right.values() for x, _ in pts])
    fig.suptitle(f"{distinct(fwd, 'model')}  ·  {distinct(fwd, 'dtype')}  ·  {distinct(fwd, 'device')}"
                 "  —  ms per forward (lower is better)", fontsize=12)
    fig.tight_layout()
    fig.savefig(args.output, dpi=args.dpi)
    print(f"wrote {args.output}", file=sys.stderr)


def add_scaling_args(p):
    p.add_argument("-o", "--output", default="perf-scaling.png", help="PNG to write [perf-scaling.png]")
    p.add_argument("--vae-factor", type=int, default=8, help="pixels per latent cell [8]")


COMMANDS = {"scaling": (cmd_scaling, add_scaling_args,
                        "ms per forward vs batch and vs resolution, one line per (tool, path)")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, add_args, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("files", nargs="+", metavar="FILE", help="JSON-lines files")
        for key in ("model", "dtype", "device", "tool"):
            p.add_argument(f"--{key}", default=None, help=f"keep only rows with this {key}")
        p.add_argument("--dpi", type=int, default=150, help="PNG resolution [150]")
        add_args(p)
    args = ap.parse_args()
    COMMANDS[args.command][0](args, load_rows(args.files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
