"""Figures: students vs the base model across richness and coverage, training curves, and the
factorial uncertainty ablation. Comparisons of cells show 95% CIs (bootstrap over problems)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from selfdistill.grid import METHODS, ROLLOUT_METHODS  # noqa: E402

METRIC_LABELS = {
    "accuracy": "accuracy (avg@n)",
    "mean_tokens": "mean response length (tokens)",
    "epistemic_count": "epistemic words per response",
    "epistemic_density": "epistemic words per 1k tokens",
    "reward": "in-domain rollout accuracy (reward)",
    "mean_length": "rollout length (tokens)",
    "loss": "loss",
}
CELL = ["method", "richness", "ablation"]


def _label(method, richness, ablation):
    if not METHODS[method].teacher:
        return method
    return f"{method}, {richness}" + ("" if ablation == "standard" else f", {ablation}")


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ci_err(rows: pd.DataFrame, metric: str):
    """Asymmetric error bars from a cell table's 95% CI (0 where no CI could be computed)."""
    low = (rows[metric] - rows[f"{metric}_ci_low"]).fillna(0).clip(lower=0)
    high = (rows[f"{metric}_ci_high"] - rows[metric]).fillna(0).clip(lower=0)
    return [low.to_numpy(), high.to_numpy()]


def plot_metric_by_coverage(cells: pd.DataFrame, metric: str, path):
    """A panel per eval set: metric vs coverage, a line per (method, richness, ablation) with 95%
    CIs, the base model as a dashed line with its CI as a band."""
    eval_sets = list(dict.fromkeys(cells["eval_set"]))
    fig, axes = plt.subplots(1, len(eval_sets), figsize=(4.6 * len(eval_sets), 4), squeeze=False)
    for ax, eval_set in zip(axes[0], eval_sets, strict=True):
        here = cells[cells["eval_set"] == eval_set]
        base = here[here["method"] == "base"]
        if len(base):
            ax.axhline(base[metric].mean(), color="black", linestyle="--", linewidth=1, label="base model")
            ax.axhspan(base[f"{metric}_ci_low"].mean(), base[f"{metric}_ci_high"].mean(), color="black", alpha=0.08)
        for cell, g in here[here["method"] != "base"].groupby(CELL):
            g = g.sort_values("coverage")
            ax.errorbar(g["coverage"], g[metric], yerr=_ci_err(g, metric), marker="o", capsize=3, label=_label(*cell))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("task coverage (distinct training problems)")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_title(f"eval set: {eval_set}")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{METRIC_LABELS.get(metric, metric)} by method and teacher context (95% CI over problems)")
    _save(fig, path)


def plot_train_loss(logs: pd.DataFrame, path):
    """Offline methods' (SFT's) loss vs step: a panel per coverage, a colour per method, richness and
    ablation, a line per seed."""
    logs = logs[~logs["method"].isin(ROLLOUT_METHODS)]
    coverages = sorted(logs["coverage"].unique()) or [None]
    fig, axes = plt.subplots(1, len(coverages), figsize=(4.2 * len(coverages), 3.4), squeeze=False, sharey=True)
    for ax, coverage in zip(axes[0], coverages, strict=True):
        for i, (cell, g) in enumerate(logs[logs["coverage"] == coverage].groupby(CELL)):
            for j, (_, run) in enumerate(g.groupby("seed")):
                ax.plot(run["step"], run["loss"], color=f"C{i}", alpha=0.8, label=_label(*cell) if j == 0 else None)
        ax.set_title(f"coverage {coverage}")
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("SFT loss (NLL per completion token)")
    _save(fig, path)


def plot_training_curves(logs: pd.DataFrame, curves: pd.DataFrame, path):
    """On-policy runs: eval accuracy, rollout reward, length and epistemic count vs step; a row
    per coverage, a line per (method, richness, ablation), mean ± sd band over seeds."""
    logs = logs[logs["method"].isin(ROLLOUT_METHODS)]
    panels = [(curves, "accuracy"), (logs, "reward"), (logs, "mean_length"), (logs, "epistemic_count")]
    coverages = sorted(logs["coverage"].unique()) or [None]
    fig, axes = plt.subplots(len(coverages), 4, figsize=(17, 3.3 * len(coverages)), squeeze=False)
    for row, coverage in enumerate(coverages):
        for col, (table, metric) in enumerate(panels):
            ax = axes[row][col]
            sub = table[table["coverage"] == coverage]
            for i, (cell, g) in enumerate(sub.groupby(CELL)):
                stats = g.groupby("step")[metric].agg(["mean", "std"]).reset_index().fillna(0)
                ax.plot(stats["step"], stats["mean"], color=f"C{i}", label=_label(*cell))
                ax.fill_between(
                    stats["step"], stats["mean"] - stats["std"], stats["mean"] + stats["std"], color=f"C{i}", alpha=0.15
                )
            title = (
                f"{curves['eval_set'].iloc[0]} accuracy"
                if metric == "accuracy" and len(curves)
                else METRIC_LABELS[metric]
            )
            ax.set_title(f"{title} (coverage {coverage})", fontsize=9)
            ax.set_xlabel("training step")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    _save(fig, path)


def plot_factorial(cells: pd.DataFrame, path, eval_set: str = "ood"):
    """On-policy cells: eval-set accuracy vs epistemic density with 95% CIs on both axes;
    colour = ablation, marker = richness, one point per coverage."""
    here = cells[(cells["method"] == "onpolicy") & (cells["eval_set"] == eval_set)]
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    markers = {"none": "o", "answer": "s", "solution": "^", "solution_nothink": "v", "regen": "D"}
    colours = {"standard": "C0", "preserve": "C2", "suppress": "C3"}
    for row in here.itertuples():
        one = here.loc[[row.Index]]
        ax.errorbar(
            row.epistemic_density,
            row.accuracy,
            xerr=_ci_err(one, "epistemic_density"),
            yerr=_ci_err(one, "accuracy"),
            marker=markers.get(row.richness, "x"),
            color=colours.get(row.ablation, "C7"),
            capsize=3,
            linestyle="none",
            label=f"{row.richness}, {row.ablation}",
        )
        ax.annotate(
            f"c{row.coverage}",
            (row.epistemic_density, row.accuracy),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    base = cells[(cells["method"] == "base") & (cells["eval_set"] == eval_set)]
    if len(base):
        ax.scatter(
            base["epistemic_density"], base["accuracy"], marker="*", s=150, color="black", label="base model", zorder=3
        )
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=7)
    ax.set_xlabel("epistemic words per 1k tokens")
    ax.set_ylabel(f"{eval_set} accuracy (avg@n)")
    ax.set_title("Uncertainty ablation: does OOD accuracy follow hedging or context?", fontsize=10)
    ax.grid(alpha=0.3)
    _save(fig, path)
