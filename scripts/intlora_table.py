#!/usr/bin/env python3
"""IntLoRA's quality table (docs/INTLORA.md) from the results of scripts/gpu/intlora_table.sh.

    tar xzf intlora-table.tar.gz && python3 scripts/intlora_table.py results > table.md

Reads eval-METHOD-sSUBJECT.json (`ditgen eval --subject` reports), info-METHOD-sSUBJECT.json (`ditgen info
--json` of the trained models: steps, seconds, merge error) and settings.json from the folder, and prints
markdown: the means over subjects for each method and width, prompt fidelity by prompt kind, and one row per
subject. Untrained baselines (BASELINES=1: u-METHOD) get rows of their own. Standard library only.
"""
import json
import os
import re
import sys
from statistics import mean

METHODS = [  # (key, method, weights/activations)
    ("lora", "LoRA (float)", "fp32"),
    ("qlora-w8", "QLoRA", "W8A8"),
    ("qlora-w4", "QLoRA", "W4A8"),
    ("mul-w8", "IntLoRA-MUL", "W8A8"),
    ("mul-w4", "IntLoRA-MUL", "W4A8"),
    ("shift-w8", "IntLoRA-SHIFT", "W8A8"),
    ("shift-w4", "IntLoRA-SHIFT", "W4A8"),
]
UNTRAINED = {  # what a method's model is after one step at lr 1e-12
    "lora": "float model",
    "qlora-w8": "plain quantization",
    "qlora-w4": "plain quantization",
    "mul-w8": "IntLoRA-MUL, untrained",
    "mul-w4": "IntLoRA-MUL, untrained",
    "shift-w8": "IntLoRA-SHIFT, untrained",
    "shift-w4": "IntLoRA-SHIFT, untrained",
}
KINDS = ["colour", "place", "company"]


def load(folder):
    evals, infos = {}, {}
    for name in sorted(os.listdir(folder)):
        m = re.fullmatch(r"eval-(.+)-s(\d+)\.json", name)
        if m:
            with open(os.path.join(folder, name)) as f:
                report = json.load(f)
            evals[(m.group(1), int(m.group(2)))] = dict(
                report["scenes"], sampling=f"{report.get('sampler', '?').upper()} {report.get('steps', '?')} steps, "
                                           f"CFG {report.get('cfg_scale', '?')}")
        m = re.fullmatch(r"info-(.+)-s(\d+)\.json", name)
        if m:
            with open(os.path.join(folder, name)) as f:
                infos[m.group(1)] = infos.get(m.group(1), {})
                infos[m.group(1)][int(m.group(2))] = json.load(f).get("training", {})
    settings = {}
    if os.path.exists(os.path.join(folder, "settings.json")):
        with open(os.path.join(folder, "settings.json")) as f:
            settings = json.load(f)
    return evals, infos, settings


def fmt(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def span(values):
    values = sorted(set(values))
    if not values:
        return "-"
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def summary_rows(evals, infos, subjects, prefix, label):
    rows = []
    for key, method, width in METHODS:
        got = [evals[(prefix + key, s)] for s in subjects if (prefix + key, s) in evals]
        if not got:
            continue
        sf = mean(e["subject_fidelity"] for e in got)
        cb = mean(e["class_baseline"] for e in got)
        pf = mean(e["prompt_fidelity"] for e in got)
        records = list(infos.get(prefix + key, {}).values())
        steps = span([r.get("steps") for r in records if "steps" in r])
        seconds = mean(r["seconds"] for r in records if "seconds" in r) if records else None
        merge = [r["intlora_merge"]["relative_error"] for r in records if "intlora_merge" in r]
        rows.append(
            f"| {label(key, method)} | {width} | {len(got)} | {fmt(sf)} | {fmt(cb)} | {sf - cb:+.3f} | {fmt(pf)} "
            f"| {steps} | {fmt(seconds, 0)} | {fmt(100 * mean(merge), 2) + ' %' if merge else '-'} |"
        )
    return rows


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: intlora_table.py RESULTS_FOLDER")
    evals, infos, settings = load(sys.argv[1])
    if not evals:
        sys.exit(f"no eval-*.json in {sys.argv[1]}")
    subjects = sorted({s for (_, s) in evals})
    out = []
    n = {e["images"] for e in evals.values()}
    out.append(
        f"Subjects {', '.join(map(str, subjects))} (Fashion-MNIST test split); {span(n)} images per model and subject "
        f"({span(e['sampling'] for e in evals.values())}); means over the subjects evaluated. "
        f"Training device {settings.get('gpu') or settings.get('device', '?')}.\n"
    )
    header = (
        "| method | weights | subjects | subject fidelity | class baseline | margin | prompt fidelity | steps "
        "| train s | merge error |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    out.append(header)
    out += summary_rows(evals, infos, subjects, "", lambda key, method: method)
    untrained = summary_rows(evals, infos, subjects, "u-", lambda key, method: f"{UNTRAINED[key]} (no adaptation)")
    if untrained:
        out.append("\nWithout adaptation (each method's model after one step at lr 1e-12; the word is in the prompt):\n")
        out.append(header)
        out += untrained

    out.append("\nPrompt fidelity by prompt kind (the ceiling: the prompts' real scenes with the subject drawn in them):\n")
    out.append("| method | weights | " + " | ".join(KINDS) + " |\n| --- | --- |" + " --- |" * len(KINDS))
    first = {}
    for (key, s), e in sorted(evals.items()):
        first.setdefault(s, e)
    cells = []
    for kind in KINDS:
        vals = [e["ceiling"]["by_kind"][kind]["prompt_fidelity"] for e in first.values()
                if kind in e.get("ceiling", {}).get("by_kind", {})]
        cells.append(fmt(mean(vals)) if vals else "-")
    out.append("| ceiling | real scenes | " + " | ".join(cells) + " |")
    for prefix in ["", "u-"]:
        for key, method, width in METHODS:
            got = [evals[(prefix + key, s)] for s in subjects if (prefix + key, s) in evals]
            if not got:
                continue
            cells = []
            for kind in KINDS:
                vals = [e["by_kind"][kind]["prompt_fidelity"] for e in got if kind in e.get("by_kind", {})]
                cells.append(fmt(mean(vals)) if vals else "-")
            name = method if not prefix else f"{UNTRAINED[key]} (no adaptation)"
            out.append(f"| {name} | {width} | " + " | ".join(cells) + " |")

    out.append("\nPer subject: subject fidelity / class baseline / prompt fidelity (ceiling prompt fidelity):\n")
    classes = {}
    ceilings = {}
    for (key, s), e in evals.items():
        classes[s] = e.get("subject", {}).get("class")
        ceilings[s] = e.get("ceiling", {}).get("prompt_fidelity")
    out.append(
        "| method | weights | "
        + " | ".join(f"{s} (class {classes[s]}, ceiling {fmt(ceilings[s], 2)})" for s in subjects)
        + " |\n| --- | --- |"
        + " --- |" * len(subjects)
    )
    for prefix in ["", "u-"]:
        for key, method, width in METHODS:
            if not any((prefix + key, s) in evals for s in subjects):
                continue
            cells = []
            for s in subjects:
                e = evals.get((prefix + key, s))
                cells.append(
                    "-" if e is None
                    else f"{e['subject_fidelity']:.3f} / {e['class_baseline']:.3f} / {e['prompt_fidelity']:.3f}"
                )
            name = method if not prefix else f"{UNTRAINED[key]} (no adaptation)"
            out.append(f"| {name} | {width} | " + " | ".join(cells) + " |")
    # What the run set out to measure (settings.json), else every method seen, for the subjects seen.
    planned_subjects = [int(s) for s in str(settings.get("subjects", "")).split()] or subjects
    planned_methods = str(settings.get("methods", "")).split() or sorted({k for (k, _) in evals if not k.startswith("u-")})
    baselines = str(settings.get("baselines", "0"))
    planned = [] if baselines == "only" else list(planned_methods)
    if baselines != "0":
        planned += ["u-" + key for key in planned_methods]
    missing = [f"{key}-s{s}" for key in planned for s in planned_subjects if (key, s) not in evals]
    if missing:
        out.append("\nMissing evaluations: " + ", ".join(missing))
    print("\n".join(out))


if __name__ == "__main__":
    main()
