#!/usr/bin/env python3
"""PT-DiT against the dense DiT: token-mixing and whole-forward time per image size, or per clip length.

  python3 scripts/bench/plot_ptdit.py OUT.png RECORDS.jsonl [BATCH]
  python3 scripts/bench/plot_ptdit.py OUT.png RECORDS.jsonl BATCH --video

RECORDS are `ditgen bench --mixing --json` lines, fast path, one batch size (default 16): of PT-DiT-XL/2 and
DiT-XL/2 against the image side in pixels (latent side x 8; results/ptdit-bench.jsonl), or with --video of the
video models scenes-video-ptdit and scenes-video-dit against the frame count (results/video-bench-*.jsonl,
concatenated).
"""
import json
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from crossover import crossover_panel  # noqa: E402


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--video"]
    video = "--video" in sys.argv
    out, records = args[0], args[1]
    batch = int(args[2]) if len(args) > 2 else 16
    if video:
        baseline, contender = "scenes-video-dit", "scenes-video-ptdit"
        size_of, xlabel = (lambda r: r["frames"]), "clip length (frames of 16 x 16 tokens)"
    else:
        baseline, contender = "DiT-XL/2", "PT-DiT-XL/2"
        size_of, xlabel = (lambda r: r["height"] * 8), "image side (px; latent side x 8)"
    ms = {}
    for line in open(records):
        r = json.loads(line)
        if r["batch"] == batch and r["path"] == "fast":
            ms[(r["model"], r["kind"], size_of(r))] = r["ms"]
    sizes = sorted({k[2] for k in ms})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, kind, title in zip(axes, ("mixing", "forward"), ("token mixing (one block)", "whole forward")):
        series = {m: ([ms[(m, kind, s)] for s in sizes], style) for m, style in ((baseline, "o-"), (contender, "s-"))}
        crossover_panel(ax, sizes, series, baseline, contender, [str(s) for s in sizes], xlabel, "ms",
                        f"{title}, batch {batch}, H100 bf16")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
