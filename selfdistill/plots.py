"""Figures: students vs the base model across richness and coverage, and training curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

METRIC_LABELS = {
    "accuracy": "accuracy (avg@n)",
    "mean_tokens": "mean response length (tokens)",
    "epistemic_count": "epistemic words per response",
}


def plot_metric_by_coverage(metrics: pd.DataFrame, metric: str, path, method: str = "sft"):
    """One panel per eval set: the metric vs coverage, a line per richness (mean ± sd over seeds),
    the base model as a dashed line."""
    eval_sets = list(dict.fromkeys(metrics["eval_set"]))
    fig, axes = plt.subplots(1, len(eval_sets), figsize=(4.2 * len(eval_sets), 3.6), squeeze=False)
    trained = metrics[metrics["method"] == method]
    for ax, eval_set in zip(axes[0], eval_sets):
        base = metrics[(metrics["method"] == "base") & (metrics["eval_set"] == eval_set)][metric]
        if len(base):
            ax.axhline(base.mean(), color="black", linestyle="--", linewidth=1, label="base model")
        cells = trained[trained["eval_set"] == eval_set].groupby(["richness", "coverage"])[metric]
        stats = cells.agg(["mean", "std"]).reset_index()
        for richness, g in stats.groupby("richness"):
            ax.errorbar(g["coverage"], g["mean"], yerr=g["std"].fillna(0), marker="o", capsize=3, label=f"{method}, {richness}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("task coverage (distinct training problems)")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_title(f"eval set: {eval_set}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{METRIC_LABELS.get(metric, metric)} by teacher context richness (mean ± sd over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_train_loss(logs: pd.DataFrame, path):
    """Loss vs step, a panel per coverage, a colour per richness, a line per seed."""
    coverages = sorted(logs["coverage"].unique())
    fig, axes = plt.subplots(1, len(coverages), figsize=(4.2 * len(coverages), 3.4), squeeze=False, sharey=True)
    colours = {r: f"C{i}" for i, r in enumerate(sorted(logs["richness"].unique()))}
    for ax, coverage in zip(axes[0], coverages):
        for (richness, seed), g in logs[logs["coverage"] == coverage].groupby(["richness", "seed"]):
            ax.plot(g["step"], g["loss"], color=colours[richness], alpha=0.8, label=f"{richness}" if seed == g["seed"].min() else None)
        ax.set_title(f"coverage {coverage}")
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("SFT loss (NLL per completion token)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    axes[0][0].legend(unique.values(), unique.keys(), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
