#!/usr/bin/env python3
"""PT-DiT against the dense DiT of equal width: token-mixing and whole-forward time per resolution.

  python3 scripts/bench/plot_ptdit.py OUT.png RECORDS.jsonl [BATCH]

RECORDS are `ditgen bench --mixing --json` lines of PT-DiT-XL/2 and DiT-XL/2 (results/ptdit-bench.jsonl);
the x axis is the image side in pixels (latent side x 8), one batch size (default 16).
"""
import json
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from crossover import crossover_panel  # noqa: E402


def main() -> None:
    out, records = sys.argv[1], sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    ms = {}
    for line in open(records):
        r = json.loads(line)
        if r["batch"] == batch and r["path"] == "fast":
            ms[(r["model"], r["kind"], r["height"] * 8)] = r["ms"]
    sides = sorted({k[2] for k in ms})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, kind, title in zip(axes, ("mixing", "forward"), ("token mixing (one block)", "whole forward")):
        series = {m: ([ms[(m, kind, s)] for s in sides], style)
                  for m, style in (("DiT-XL/2", "o-"), ("PT-DiT-XL/2", "s-"))}
        crossover_panel(ax, sides, series, "DiT-XL/2", "PT-DiT-XL/2", [str(s) for s in sides],
                        "image side (px; latent side x 8)", "ms", f"{title}, batch {batch}, H100 bf16")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
