"""privacy.md and the two figures of the privacy benchmark (`bench.privacy`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from bench.privacy_accuracy import accuracy_rows

__all__ = ["accuracy_rows", "save_figures", "write_markdown"]


def _eps(value: float | None) -> str:
    return "∞ (no noise)" if value is None else f"{value:,.3g}"


def write_markdown(doc: dict[str, Any], path: Path) -> None:
    load = doc["machine"]["load_average_1_5_15"]
    lines = [
        "# Privacy: gradient inversion, sealing, and accuracy against ε",
        "",
        f"`python -m bench.privacy` ({doc['mode']} mode), {doc['wall_time_s']} s, model {doc['model']} "
        f"({doc['params']} parameters), δ = {doc['delta']}; measured under load (load average {load[0]}, {load[1]}, "
        f"{load[2]} on {doc['machine']['cpus']} cores).",
        "",
        "## Inversion of one trainer's update (one SGD step on a small batch; cosine gradient matching)",
        "",
        "Pixel MSE of the best-matched reconstruction (pixels in [0, 1]). `sealed`: what a non-reader holds is the",
        "envelope; it can neither open nor decode it, so its best guess is the data set's mean image.",
        "",
        "| batch | update | noise multiplier z (local) | ε per update | MSE | non-reader's attempt |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for row in doc["inversion"]:
        if row.get("sealed"):
            lines.append(f"| {row['batch']} | sealed ({row['sealed_bytes']} B) | — | — | {row['mse']:.4f} | "
                         f"{row['non_reader']} |")
        else:
            lines.append(f"| {row['batch']} | clear text | {row['noise_multiplier']} | {_eps(row['epsilon'])} | "
                         f"{row['mse']:.4f} | — |")
    lines += [
        "",
        "## Accuracy against ε (DP-FedAvg, central noise, every trainer every round)",
        "",
        "| data set | z | ε after all rounds | rounds | trainers | clip norm S | test accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in doc["accuracy"]:
        lines.append(f"| {row['dataset']} | {row['noise_multiplier']} | {_eps(row['epsilon'])} | {row['rounds']} | "
                     f"{row['trainers']} | {row['clip_norm']:.3f} | {row['accuracy']:.3f} |")
    path.write_text("\n".join(lines) + "\n")


def _inversion_figure(images: dict[str, np.ndarray], batches: Sequence[int], path: Path) -> None:
    keys = ["original", *sorted({k.split("_b")[0] for k in images if k.startswith("z")}, key=lambda k: float(k[1:]))]
    columns = sum(batches)
    fig, axes = plt.subplots(len(keys), columns, figsize=(columns * 0.9, len(keys) * 1.0), squeeze=False)
    for r, key in enumerate(keys):
        c = 0
        for batch in batches:
            for image in images[f"{key}_b{batch}"]:
                axes[r][c].imshow(np.asarray(image).reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
                axes[r][c].set_xticks([])
                axes[r][c].set_yticks([])
                c += 1
        axes[r][0].set_ylabel("original" if key == "original" else f"z={key[1:]}", fontsize=7)
    fig.suptitle("Originals (top) and DLG-style reconstructions from the update, by local noise z", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _curves(doc: dict[str, Any], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for dataset in sorted({r["dataset"] for r in doc["accuracy"]}):
        rows = [r for r in doc["accuracy"] if r["dataset"] == dataset and r["epsilon"] is not None]
        clear = [r for r in doc["accuracy"] if r["dataset"] == dataset and r["epsilon"] is None]
        line = left.plot([r["epsilon"] for r in rows], [r["accuracy"] for r in rows], "o-", label=dataset)
        for r in clear:
            left.axhline(r["accuracy"], ls=":", color=line[0].get_color(), label=f"{dataset}, no noise")
    left.set_xscale("log")
    left.set(xlabel=f"ε at δ={doc['delta']}", ylabel="test accuracy", title="DP-FedAvg: accuracy against ε")
    left.legend(fontsize=7)
    for batch in sorted({r["batch"] for r in doc["inversion"]}):
        rows = [r for r in doc["inversion"] if r["batch"] == batch and not r.get("sealed")]
        right.plot([max(r["noise_multiplier"], 1e-3) for r in rows], [r["mse"] for r in rows], "o-",
                   label=f"batch {batch}")
        sealed = [r for r in doc["inversion"] if r["batch"] == batch and r.get("sealed")]
        right.axhline(sealed[0]["mse"], ls=":", color="gray")
    right.set_xscale("log")
    right.set(xlabel="local noise multiplier z (0 drawn at 1e-3)", ylabel="reconstruction MSE",
              title="Inversion error as noise grows (dotted: sealed)")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_figures(doc: dict[str, Any], images: dict[str, np.ndarray], batches: Sequence[int], out: Path) -> None:
    _inversion_figure(images, batches, out / "privacy_inversion.png")
    _curves(doc, out / "privacy.png")
