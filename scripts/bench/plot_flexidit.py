#!/usr/bin/env python3
"""FID-FMNIST and class accuracy against GFLOPs for FlexiDiT schedules (docs/FLEXIDIT.md): reads `ditgen eval`
records (JSON lines, as scripts/gpu/flexidit.sh writes them). Each source gives series named LABEL plus the
kind of schedule: weak first (both branches weak, one line per CFG scale), weak-model guidance (the branches'
patches differ in some steps), and either with a weak-cfg; `#MODEL_FILE` keeps only that model's records.

usage: plot_flexidit.py OUT.png [--mark "SCHEDULE@CFG|NAME"] [--dense FID,ACCURACY] LABEL=RECORDS.jsonl[#MODEL_FILE] ...

Only the seed-0 evaluation is plotted (schedules were chosen on it; the later seeds confirm them). Records
older than the `seed` field are told apart by their real-vs-real FID floor (0.493 at seed 0). A series whose
points share a GFLOPs value (a sweep) is drawn as points, others as a line. --mark stars one schedule;
--dense draws the acceptance limits (FID 1.1x, accuracy -1 point) of that dense result.
"""
from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DENSE_GFLOPS = 141.2694  # fmnist-dit, 50 DDIM steps with CFG


def kind(r: dict) -> str:
    s = r["schedule"]
    k = "weak-model guidance" if "guide=" in s else f"weak first, CFG {r['cfg_scale']:g}"
    return k + (" + weak-cfg" if "weak-cfg" in s else "")


def seed_zero(r: dict) -> bool:
    return r.get("seed", 0) == 0 if "seed" in r else r["real_vs_real_fid"] < 0.55


def main(argv: list[str]) -> int:
    args = argv[1:]
    mark = dense = None
    while len(args) > 1 and args[1] in ("--mark", "--dense"):
        if args[1] == "--mark":
            mark = args[2]
        else:
            dense = [float(v) for v in args[2].split(",")]
        del args[1:3]
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, sources = args[0], args[1:]
    fig, (ax_fid, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.6))
    series: dict[str, list] = {}
    for source in sources:
        label, _, path = source.partition("=")
        path, _, model_file = path.partition("#")
        for line in open(path):
            r = json.loads(line)
            if not seed_zero(r) or (model_file and r["model"]["file"] != model_file):
                continue
            key = f"{label}: {kind(r)}"
            series.setdefault(key, []).append(r)
    for key, rows in series.items():
        rows.sort(key=lambda r: r["gflops_per_image"])
        x = [100 * r["gflops_per_image"] / DENSE_GFLOPS for r in rows]
        style = "o" if len({round(v, 1) for v in x}) < len(x) else "o-"
        ax_fid.plot(x, [r["fid"] for r in rows], style, label=key, alpha=0.8)
        ax_acc.plot(x, [100 * r["class_accuracy"] for r in rows], style, label=key, alpha=0.8)
        for xi, r in zip(x, rows):
            if mark and f"{r['schedule']}@{r['cfg_scale']:g}" == mark.rpartition("|")[0]:
                for ax, y in ((ax_fid, r["fid"]), (ax_acc, 100 * r["class_accuracy"])):
                    ax.plot([xi], [y], "*", color="black", ms=14, zorder=5)
                    ax.annotate(mark.rpartition("|")[2], (xi, y), fontsize=7, xytext=(6, -10),
                                textcoords="offset points")
            elif style == "o-":
                ax_fid.annotate(r["schedule"], (xi, r["fid"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if dense:
        ax_fid.axhline(1.1 * dense[0], color="black", lw=0.8, ls="--", label="1.1x dense FID")
        ax_acc.axhline(dense[1] - 1, color="black", lw=0.8, ls="--", label="dense accuracy - 1 point")
    for ax, name in ((ax_fid, "FID-FMNIST (10k, lower is better)"), (ax_acc, "class accuracy %")):
        ax.set_xlabel("GFLOPs, % of dense (50 DDIM steps, CFG)")
        ax.set_ylabel(name)
        ax.axvline(55, color="grey", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    ax_fid.set_yscale("log")
    ax_acc.legend(fontsize=6.5, loc="lower right")
    fig.suptitle("FlexiDiT schedules on the shipped Fashion-MNIST model (H100, bf16, seed-0 evaluation)")
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
