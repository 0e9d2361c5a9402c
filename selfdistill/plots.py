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


ABLATION_STYLE = {"standard": ("-", "o"), "preserve": ("--", "s"), "suppress": (":", "v")}


def _styles(frame: pd.DataFrame) -> dict:
    """Line and marker style per (method, richness, ablation) present: a distinct colour per method
    and richness (tab10, tab20 beyond ten), line style and marker per ablation."""
    cells = sorted({tuple(c) for c in frame[CELL].drop_duplicates().itertuples(index=False)})
    arms = list(dict.fromkeys(cell[:2] for cell in cells))
    palette = plt.get_cmap("tab10" if len(arms) <= 10 else "tab20")
    out = {}
    for cell in cells:
        linestyle, marker = ABLATION_STYLE.get(cell[2], ("-.", "x"))
        out[cell] = {"color": palette(arms.index(cell[:2]) % palette.N), "linestyle": linestyle, "marker": marker}
    return out


def _coverage(value) -> str:
    return "n/a" if pd.isna(value) else f"{int(value)}"


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return fig  # closed for pyplot, still inspectable


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
        trained = here[here["method"] != "base"]
        styles = _styles(trained)
        for cell, g in trained.groupby(CELL):
            g = g.sort_values("coverage")
            ax.errorbar(
                g["coverage"], g[metric], yerr=_ci_err(g, metric), capsize=3, label=_label(*cell), **styles[cell]
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("task coverage (distinct training problems)")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_title(f"eval set: {eval_set}")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{METRIC_LABELS.get(metric, metric)} by method and teacher context (95% CI over problems)")
    return _save(fig, path)


def plot_train_loss(logs: pd.DataFrame, path):
    """Offline methods' (SFT's) loss vs step: a panel per coverage, a colour per method, richness and
    ablation, a line per seed."""
    logs = logs[~logs["method"].isin(ROLLOUT_METHODS)]
    coverages = sorted(logs["coverage"].unique()) or [None]
    fig, axes = plt.subplots(1, len(coverages), figsize=(4.2 * len(coverages), 3.4), squeeze=False, sharey=True)
    styles = _styles(logs)
    for ax, coverage in zip(axes[0], coverages, strict=True):
        for cell, g in logs[logs["coverage"] == coverage].groupby(CELL):
            for j, (_, run) in enumerate(g.groupby("seed")):
                style = {**styles[cell], "marker": None}
                ax.plot(run["step"], run["loss"], alpha=0.8, label=_label(*cell) if j == 0 else None, **style)
        ax.set_title(f"coverage {_coverage(coverage)}")
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("SFT loss (NLL per completion token)")
    return _save(fig, path)


def plot_training_curves(logs: pd.DataFrame, curves: pd.DataFrame, path):
    """On-policy runs: eval accuracy, rollout reward, length and epistemic count vs step; a row
    per coverage, a line per (method, richness, ablation), mean ± sd band over seeds."""
    logs = logs[logs["method"].isin(ROLLOUT_METHODS)]
    panels = [(curves, "accuracy"), (logs, "reward"), (logs, "mean_length"), (logs, "epistemic_count")]
    coverages = sorted(logs["coverage"].unique()) or [None]
    styles = _styles(pd.concat([logs[CELL], curves[CELL]]))
    fig, axes = plt.subplots(len(coverages), 4, figsize=(17, 3.3 * len(coverages)), squeeze=False)
    for row, coverage in enumerate(coverages):
        for col, (table, metric) in enumerate(panels):
            ax = axes[row][col]
            sub = table[table["coverage"] == coverage]
            for cell, g in sub.groupby(CELL):
                style = styles[cell]
                stats = g.groupby("step")[metric].agg(["mean", "std"]).reset_index().fillna(0)
                marker = style["marker"] if metric == "accuracy" else None  # checkpoints are few: show them
                ax.plot(stats["step"], stats["mean"], label=_label(*cell), **{**style, "marker": marker})
                ax.fill_between(
                    stats["step"],
                    stats["mean"] - stats["std"],
                    stats["mean"] + stats["std"],
                    color=style["color"],
                    alpha=0.15,
                )
            title = (
                f"{curves['eval_set'].iloc[0]} accuracy"
                if metric == "accuracy" and len(curves)
                else METRIC_LABELS[metric]
            )
            ax.set_title(f"{title} (coverage {_coverage(coverage)})", fontsize=9)
            ax.set_xlabel("training step")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def plot_factorial(cells: pd.DataFrame, path, eval_set: str = "ood"):
    """On-policy cells: eval-set accuracy vs epistemic density with 95% CIs on both axes; a panel
    per coverage (no point labels to overlap), colour = ablation, marker = richness."""
    here = cells[(cells["method"] == "onpolicy") & (cells["eval_set"] == eval_set)]
    base = cells[(cells["method"] == "base") & (cells["eval_set"] == eval_set)]
    coverages = sorted(here["coverage"].dropna().unique()) or [None]
    fig, axes = plt.subplots(
        1, len(coverages), figsize=(5.2 * len(coverages), 4.6), squeeze=False, sharex=True, sharey=True
    )
    markers = {"none": "o", "answer": "s", "solution": "^", "solution_nothink": "v", "regen": "D"}
    colours = {"standard": "tab:blue", "preserve": "tab:green", "suppress": "tab:red"}
    for ax, coverage in zip(axes[0], coverages, strict=True):
        for row in here[here["coverage"] == coverage].itertuples():
            one = here.loc[[row.Index]]
            ax.errorbar(
                row.epistemic_density,
                row.accuracy,
                xerr=_ci_err(one, "epistemic_density"),
                yerr=_ci_err(one, "accuracy"),
                marker=markers.get(row.richness, "x"),
                markersize=8,
                color=colours.get(row.ablation, "tab:gray"),
                capsize=3,
                linestyle="none",
                label=f"context {row.richness}, {row.ablation}",
            )
        for b in base.itertuples():  # the base model on the same problems
            if pd.isna(b.coverage) or b.coverage == coverage:
                ax.scatter(
                    b.epistemic_density, b.accuracy, marker="*", s=180, color="black", label="base model", zorder=3
                )
        ax.set_title(f"coverage {_coverage(coverage)}", fontsize=10)
        ax.set_xlabel("epistemic words per 1k tokens")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{eval_set} accuracy (avg@n, 95% CI)")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    for ax in axes[0][:-1]:
        more_handles, more_labels = ax.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    unique = dict(zip(labels, handles, strict=True))
    axes[0][-1].legend(unique.values(), unique.keys(), fontsize=7)
    fig.suptitle("Uncertainty ablation: does OOD accuracy follow hedging or context?", fontsize=11)
    return _save(fig, path)


_ARROWS = {-1: "v", 0: "_", 1: "^"}  # predicted sign: lower, no effect, higher


def _arm_label(a) -> str:
    parts = [a.method] + ([a.richness] if METHODS[a.method].teacher else [])
    parts += [a.ablation] if a.ablation != "standard" else []
    return "\n".join(parts + [f"c{int(a.coverage)}"])


def plot_organism(effects: pd.DataFrame, cells: pd.DataFrame, path, ood: str = "ood", ood_on: str = "ood"):
    """One column per world: does OOD accuracy follow checking? Top: each arm's OOD accuracy sampled
    freely (filled) and with checking forced on (open), 95% CIs, the base model's as grey lines
    (dashed: free, dotted: forced on); along the top, the sign predicted before any result (grey
    triangle down: lower than the base, a bar: no effect). Bottom: epistemic words per response."""
    models = [m for m in dict.fromkeys(effects["model"]) if " - " not in m] if len(effects) else []
    arms_of = {
        m: effects[effects["model"] == m].drop_duplicates(["method", "richness", "ablation", "coverage"])
        for m in models
    }
    width = max([5.0] + [1.0 * len(a) + 1.5 for a in arms_of.values()])
    fig, axes = plt.subplots(2, max(1, len(models)), figsize=(width * max(1, len(models)), 7.5), squeeze=False)
    if not models:
        axes[0][0].text(0.5, 0.5, "no toy model of a guess world in this grid", ha="center", va="center")
        return _save(fig, path)
    for column, model in enumerate(models):
        mine, arms = effects[effects["model"] == model], arms_of[model]
        top, bottom = axes[0][column], axes[1][column]
        panels = (
            (ood, "accuracy", top, False),
            (ood_on, "accuracy", top, True),
            (ood, "epistemic_count", bottom, False),
        )
        for eval_set, metric, ax, forced in panels:
            here = cells[(cells["model"] == model) & (cells["eval_set"] == eval_set)]
            base = here[here["method"] == "base"]
            if len(base):
                ax.axhline(base[metric].iloc[0], color="0.45", linestyle=":" if forced else "--", linewidth=1)
            for x, a in enumerate(arms.itertuples()):
                row = here[
                    (here["method"] == a.method)
                    & (here["richness"] == a.richness)
                    & (here["ablation"] == a.ablation)
                    & (here["coverage"] == a.coverage)
                ]
                if len(row):
                    ax.errorbar(
                        x + (0.15 if forced else -0.15),
                        row[metric],
                        yerr=_ci_err(row, metric),
                        fmt="o",
                        color="tab:blue" if metric == "accuracy" else "tab:orange",
                        mfc="white" if forced else None,
                        capsize=3,
                        label=None if x else ("checking forced on" if forced else "sampled freely"),
                    )
        for ax, quantity in ((top, "ood"), (bottom, "epistemic")):
            for x, a in enumerate(arms.itertuples()):
                sign = mine[
                    (mine["quantity"] == quantity)
                    & (mine["method"] == a.method)
                    & (mine["richness"] == a.richness)
                    & (mine["ablation"] == a.ablation)
                    & (mine["coverage"] == a.coverage)
                ]["predicted"]
                if len(sign):
                    ax.plot(
                        x,
                        1.04,
                        marker=_ARROWS[int(sign.iloc[0])],
                        color="0.5",
                        markersize=9,
                        transform=ax.get_xaxis_transform(),
                        clip_on=False,
                    )
            ax.set_xticks(range(len(arms)), [_arm_label(a) for a in arms.itertuples()], fontsize=8)
            ax.set_xlim(-0.6, len(arms) - 0.4)
        top.set_ylim(-0.03, 1.03)
        bottom.set_ylim(bottom=0)
        top.set_title(f"{model} (world {mine['world'].iloc[0]})\n", fontsize=11)
        top.set_ylabel(f"OOD accuracy, 95% CI\n({ood}; {ood_on})")
        bottom.set_ylabel("epistemic words per OOD response")
        top.legend(fontsize=8, loc="best", title="grey lines: base; grey marks: predicted sign", title_fontsize=7)
    return _save(fig, path)
