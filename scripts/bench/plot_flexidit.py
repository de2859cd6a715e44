#!/usr/bin/env python3
"""FID-FMNIST against GFLOPs for FlexiDiT schedules (docs/FLEXIDIT.md): reads `ditgen eval` records
(JSON lines, as scripts/gpu/flexidit.sh writes them) and plots one series per (model, CFG, weak-cfg).

usage: plot_flexidit.py OUT.png RECORDS.jsonl [LABEL=RECORDS.jsonl ...]
"""
from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DENSE_GFLOPS = 141.2694  # fmnist-dit, 50 DDIM steps with CFG


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out, sources = argv[1], argv[2:]
    fig, (ax_fid, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    for source in sources:
        label, _, path = source.rpartition("=")
        series: dict[str, list] = {}
        for line in open(path):
            r = json.loads(line)
            weak_cfg = "weak-cfg" in r["schedule"]
            key = (label or f"{r['model']['name']} cfg {r['cfg_scale']:g}") + (" + weak-cfg" if weak_cfg else "")
            series.setdefault(key, []).append(r)
        for key, rows in series.items():
            rows.sort(key=lambda r: r["gflops_per_image"])
            x = [100 * r["gflops_per_image"] / DENSE_GFLOPS for r in rows]
            style = "s--" if "weak-cfg" in key else "o-"
            ax_fid.plot(x, [r["fid"] for r in rows], style, label=key)
            ax_acc.plot(x, [100 * r["class_accuracy"] for r in rows], style, label=key)
            for xi, r in zip(x, rows):
                if "weak-scale" in r["schedule"]:  # a cluster at 55%: the legend says what they are
                    continue
                ax_fid.annotate(r["schedule"].replace(",weak-cfg", "\nweak-cfg"), (xi, r["fid"]), fontsize=6,
                                xytext=(3, 3), textcoords="offset points")
    for ax, name in ((ax_fid, "FID-FMNIST (10k, lower is better)"), (ax_acc, "class accuracy %")):
        ax.set_xlabel("GFLOPs, % of dense (50 DDIM steps, CFG)")
        ax.set_ylabel(name)
        ax.axvline(55, color="grey", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    ax_fid.set_yscale("log")
    ax_acc.legend(fontsize=7, loc="lower right")
    fig.suptitle("FlexiDiT schedules on the shipped Fashion-MNIST model (H100, bf16)")
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
