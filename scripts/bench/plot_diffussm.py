#!/usr/bin/env python3
"""DiffuSSM against the dense DiT of equal width: whole-forward time and peak memory per token count.

  python3 scripts/bench/plot_diffussm.py OUT.png RECORDS.jsonl [RECORDS.jsonl ...]

RECORDS are `ditgen bench --mixing --json` lines (results/diffussm-bench-*.jsonl): batch 1, the fast
path. A later file's record replaces an earlier one's for the same model and token count, so the newest
measurement of each model is plotted.
"""
import json
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from crossover import crossover_panel  # noqa: E402

MODELS = (("DiT-XL/2", "o-"), ("DiffuSSM-XL", "s-"), ("DiffuSSM-XL-shared", "^--"))


def main() -> None:
    out, files = sys.argv[1], sys.argv[2:]
    forward = {}
    for path in files:
        for line in open(path):
            r = json.loads(line)
            if r["batch"] == 1 and r["path"] == "fast" and r["kind"] == "forward":
                forward[(r["model"], r["tokens"])] = r
    tokens = sorted({t for _, t in forward})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, field, unit in zip(axes, ("ms", "peak_memory_gib"), ("ms per forward", "peak GPU memory (GiB)")):
        series = {m: ([forward[(m, t)][field] for t in tokens], style) for m, style in MODELS}
        crossover_panel(ax, tokens, series, "DiT-XL/2", "DiffuSSM-XL", [f"{t // 1024}k" for t in tokens],
                        "tokens L (DiffuSSM patch 1, DiT patch 2)", unit, f"{unit}, batch 1, H100 bf16",
                        ratios=field == "ms")
        if field == "peak_memory_gib":
            ax.set_yticks([1, 2, 5, 10, 20, 40])
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
