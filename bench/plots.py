"""The benchmark's figures (matplotlib, Agg backend): every one with a title, labelled axes and units."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

COLORS = {"centralized": "#4c72b0", "fedavg": "#dd8452", "flchain": "#55a868", "flchain-nogate": "#8c8c8c"}
DPI = 110


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def accuracy_figure(summary: Mapping[str, Any], runs: Sequence[Any], path: Path) -> Path:
    """Left: final test accuracy per split and method, ratio to centralized on the bars. Right: curves."""
    splits, methods = tuple(summary), tuple(m for m in COLORS if m in summary["iid"])
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        xs = np.arange(len(splits)) + (k - (len(methods) - 1) / 2) * width
        heights = [summary[s][method].accuracy_mean for s in splits]
        drawn = bars.bar(xs, heights, width, label=method, color=COLORS[method])
        for rect, split in zip(drawn, splits, strict=True):
            ratio = summary[split][method].ratio_mean
            bars.annotate(f"{ratio:.3f}x", (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                          ha="center", va="bottom", fontsize=8)
    low = min(summary[s][m].accuracy_mean for s in splits for m in methods)
    bars.set_ylim(max(0.0, low - 0.15), 1.08)
    labels = {"iid": "IID", "dirichlet": "Dirichlet(0.5)", "by-role": "by speaking role"}
    bars.set_xticks(np.arange(len(splits)), [labels.get(split, split) for split in splits])
    bars.set_ylabel("final test accuracy (fraction)")
    bars.set_title("Final test accuracy (label: ratio to centralized)")
    bars.legend(loc="upper center", ncol=len(methods), fontsize=8)
    for run in runs:
        if run.seed != runs[0].seed or (run.method == "centralized" and run.split != "iid"):
            continue
        xs = np.arange(1, len(run.curve) + 1) / len(run.curve) * run.sample_gradients / 1e6
        style = "-" if run.split == "iid" else "--"
        label = "centralized" if run.method == "centralized" else f"{run.method}, {run.split}"
        curves.plot(xs, run.curve, style, color=COLORS[run.method], label=label)
    curves.set_xlabel("sample-gradient computations (millions)")
    curves.set_ylabel("test accuracy (fraction)")
    curves.set_title(f"Test accuracy vs compute (seed {runs[0].seed})")
    curves.set_ylim(0.0, 1.0)
    curves.grid(alpha=0.3)
    curves.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def heatmap(ax: Axes, matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], *, title: str,
            fmt: str, vmin: float, vmax: float, cmap: str) -> None:
    """An annotated heatmap (NaN cells grey, labelled n/a)."""
    masked = np.ma.masked_invalid(matrix)
    colormap = plt.get_cmap(cmap).with_extremes(bad="#dddddd")
    image = ax.imshow(masked, cmap=colormap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_title(title, fontsize=10)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            value = matrix[i, j]
            text = "n/a" if np.isnan(value) else format(value, fmt)
            red, green, blue, _ = colormap(image.norm(value)) if not np.isnan(value) else (0.87, 0.87, 0.87, 1.0)
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    plt.colorbar(image, ax=ax, fraction=0.046, pad=0.04)


def robustness_figures(matrices: Mapping[float, Mapping[str, np.ndarray]], attacks: Sequence[str],
                       rules: Sequence[str], out_dir: Path) -> tuple[Path, Path]:
    """Heatmaps (attack x rule), one panel per attacker fraction: accuracy ratio and attackers' payout share."""
    fractions = sorted(matrices)
    paths = []
    specs = (
        ("accuracy_ratio", "final accuracy / clean accuracy", ".2f", 0.0, 1.0, "RdYlGn", "robustness_accuracy.png"),
        ("payout_share", "attackers' share of payouts (%)", ".1f", 0.0, 50.0, "Reds", "robustness_payouts.png"),
    )
    for key, label, fmt, vmin, vmax, cmap, name in specs:
        fig, axes = plt.subplots(1, len(fractions), figsize=(5.2 * len(fractions), 0.42 * len(attacks) + 2.2),
                                 squeeze=False)
        for ax, fraction in zip(axes[0], fractions, strict=True):
            matrix = matrices[fraction][key] * (100.0 if key == "payout_share" else 1.0)
            heatmap(ax, matrix, attacks, rules, title=f"{fraction:.0%} attackers", fmt=fmt, vmin=vmin, vmax=vmax,
                    cmap=cmap)
            ax.set_xlabel("aggregation rule (centered_clip = flchain default)", fontsize=8)
        axes[0][0].set_ylabel("attack")
        fig.suptitle(f"Robustness: {label}", fontsize=12)
        fig.tight_layout()
        paths.append(_save(fig, out_dir / name))
    return paths[0], paths[1]


GROUP_COLORS = {"clean": "#2ca02c", "noise20": "#ff7f0e", "noise50": "#d62728", "half": "#1f77b4",
                "duplicated": "#9467bd"}


def fairness_figure(values: Sequence[Any], rho: Mapping[str, float], path: Path) -> Path:
    """Each trainer's share of its seed's payouts against its Shapley value, designed quality, LOO value and
    standalone accuracy;
    `rho` holds the mean Spearman correlation of each panel (keys: the TrainerValue fields)."""
    totals: dict[int, int] = {}
    for v in values:
        totals[v.seed] = totals.get(v.seed, 0) + v.payout_wei
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2), sharey=True)
    panels = (
        ("shapley_value", "exact Shapley value (test loss reduction)"),
        ("quality_rank", "designed quality rank (4 = clean)"),
        ("loo_value", "leave-one-out value (test loss without - with)"),
        ("standalone_accuracy", "standalone test accuracy (fraction)"),
    )
    jitter = np.random.default_rng(0)
    for ax, (field, label) in zip(axes, panels, strict=True):
        for group, color in GROUP_COLORS.items():
            members = [v for v in values if v.group == group]
            xs = np.array([getattr(v, field) for v in members], dtype=float)
            if field == "quality_rank":
                xs = xs + jitter.uniform(-0.12, 0.12, size=xs.size)
            ys = [100 * v.payout_wei / totals[v.seed] if totals[v.seed] else 0.0 for v in members]
            ax.scatter(xs, ys, color=color, label=group, s=36, alpha=0.85)
        ax.set_xlabel(label)
        ax.set_title(f"Spearman rho = {rho[field]:.2f}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of the run's payouts (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Fairness: each trainer's share of the payouts vs the value of its data", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def gas_figure(rounds: Sequence[Any], path: Path) -> Path:
    """Left: the aggregator's gas per round by operation vs participants (log-log). Right: per participant."""
    fig, (total, each) = plt.subplots(1, 2, figsize=(12, 4.5))
    for round_id, style in ((1, "--"), (2, "-")):
        rs = sorted((r for r in rounds if r.round_id == round_id), key=lambda r: r.participants)
        if not rs:
            continue
        ns = [r.participants for r in rs]
        label = "round 1 (first records)" if round_id == 1 else "round 2 (steady state)"
        total.plot(ns, [r.aggregator_total for r in rs], "k" + style, marker="o", label=f"aggregator total, {label}")
        if round_id == 2:
            parts = (("openRound", [r.open_round for r in rs]), ("finalizeRound", [r.finalize_round for r in rs]),
                     ("recordReputations", [sum(r.record_reputations) for r in rs]),
                     ("slashes", [sum(r.slashes) or np.nan for r in rs]))
            for name, ys in parts:
                total.plot(ns, ys, style, marker=".", label=f"{name}, round 2")
        each.plot(ns, [r.aggregator_total / r.participants for r in rs], "k" + style, marker="o",
                  label=f"aggregator per participant, {label}")
        if round_id == 2:
            each.plot(ns, [r.submit_update_median for r in rs], "-", marker="s", label="trainer: commit + reveal")
            each.plot(ns, [r.claim for r in rs], "-", marker="^", label="trainer: claim")
    for ax in (total, each):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("participants per round")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    total.set_ylabel("gas per round")
    total.set_title("Aggregator's gas per round (slashes: 10 % of participants)")
    each.set_ylabel("gas per participant per round")
    each.set_title("Gas per participant")
    return _save(fig, path)


OVERHEAD_STEPS = (
    ("training", "training (1 trainer)"),
    ("upload", "upload (1 trainer)"),
    ("submit", "submit tx (1 trainer)"),
    ("download", "download + verify"),
    ("scoring", "scoring (LossScore forward passes)"),
    ("filters", "fast filters"),
    ("aggregation", "ratings, payouts, robust rule, outer step"),
    ("publish", "publish"),
    ("chain", "chain (aggregator txs)"),
)


def _overhead_parts(row: Any) -> dict[str, float]:
    r, c = row.round, row.chain
    filters = r.steps_s.get("filter_round", 0.0)
    return {"training": r.training_per_trainer_s, "upload": r.upload_per_trainer_s, "submit": c.submit_update_s,
            "download": r.download_verify_s, "scoring": r.scoring_s, "filters": filters,
            "aggregation": r.aggregation_s - filters,
            "publish": r.publish_s, "chain": c.aggregator_s}


def _sweep_rows(rows: Sequence[Any], sweep: str) -> list[Any]:
    """The rows of one sweep in order; the model sweep borrows the trainer-sweep row it shares (deduplicated)."""
    if sweep == "trainers":
        return sorted((r for r in rows if r.sweep == "trainers"), key=lambda r: r.trainers)
    model_rows = [r for r in rows if r.sweep == "model"]
    trainers = {r.trainers for r in model_rows}
    shared = [r for r in rows if r.sweep == "trainers" and r.trainers in trainers]
    return sorted(model_rows + shared, key=lambda r: r.params)


def overhead_figure(rows: Sequence[Any], path: Path) -> Path:
    """Stacked wall time per step for the trainer sweep and the model sweep, and the scoring ratio."""
    sweeps = (("trainers", "trainers (model fixed)"), ("model", "model size (trainers fixed)"))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [1, 1, 0.8]})
    palette = plt.get_cmap("tab10")
    for ax, (sweep, title) in zip(axes[:2], sweeps, strict=True):
        picked = _sweep_rows(rows, sweep)
        labels = [f"{r.trainers:,} x {r.params / 1e6:.2g}M" for r in picked]
        bottom = np.zeros(len(picked))
        for k, (key, name) in enumerate(OVERHEAD_STEPS):
            heights = np.array([_overhead_parts(r)[key] for r in picked])
            ax.bar(labels, heights, bottom=bottom, label=name, color=palette(k % 10))
            bottom += heights
        for x, total in enumerate(bottom):
            ax.annotate(f"{total:.1f} s", (x, total), ha="center", va="bottom", fontsize=8)
        ax.set_xlabel("trainers x parameters")
        ax.set_ylabel("wall time of one round (s)")
        ax.set_title(f"Round wall time vs {title}")
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7, loc="upper left")
    labels = [f"{r.trainers:,} x {r.params / 1e6:.2g}M" for r in rows]
    where = np.arange(len(rows))
    axes[2].bar(where - 0.2, [r.round.scoring_ratio for r in rows], width=0.4, color="#8172b2",
                label="over passes of one model")
    axes[2].bar(where + 0.2, [r.round.distinct_ratio for r in rows], width=0.4, color="#ccb974",
                label="over passes of distinct models")
    axes[2].set_xticks(where, labels)
    axes[2].axhline(1.2, color="red", linestyle="--", label="aim 1.2")
    axes[2].set_ylabel("scoring time / bare forward passes")
    axes[2].set_xlabel("trainers x parameters")
    axes[2].set_title("Scoring overhead over the forward passes")
    axes[2].tick_params(axis="x", rotation=30)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def sybil_figure(labels: Sequence[str], gains: Sequence[Sequence[float]], aim: float, path: Path) -> Path:
    """One bar per Sybil case, its mean gain over seeds (paid to k accounts / paid to one account), a dot per
    seed, with the aim as a line."""
    fig, ax = plt.subplots(figsize=(max(8.0, 0.45 * len(labels)), 4.2))
    means = [float(np.mean(g)) for g in gains]
    colors = ["#c44e52" if max(g) > aim else COLORS["flchain"] for g in gains]
    ax.bar(range(len(means)), means, color=colors, alpha=0.8)
    for x, seeds in enumerate(gains):
        ax.plot([x] * len(seeds), seeds, "o", color="black", markersize=2.5)
    ax.axhline(aim, color="black", linestyle="--", linewidth=1, label=f"aim <= {aim:g}")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("payout of k accounts / payout of one account")
    ax.set_title("Sybil gain by case (trainers, k, partition, mode): mean over seeds, a dot per seed; red: a seed "
                 "above the aim", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
