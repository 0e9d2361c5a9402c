"""Figures: each trained arm against its own model's base, per model (world), training curves, the
factorial uncertainty ablation and the organism's per-world view. No figure element averages over
models: every panel belongs to one model and names it. Comparisons show 95% CIs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

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


def _label(method, richness, ablation, sep=", "):
    if not METHODS[method].teacher:
        return method
    return sep.join([method, richness] + ([] if ablation == "standard" else [ablation]))


def model_title(model: str, worlds: dict | None) -> str:
    """A model's name with its toy world, where it has one: what every panel is titled by."""
    world = (worlds or {}).get(model)
    return f"{model} (world {world})" if world else model


ABLATION_STYLE = {"standard": ("-", "o"), "preserve": ("--", "s"), "suppress": (":", "v")}


def _styles(frame: pd.DataFrame) -> dict:
    """Line and marker style per (method, richness, ablation) present: a distinct colour per method
    and richness (tab10, tab20 beyond ten), line style and marker per ablation. The same arm has the
    same style in every model's panels."""
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
    # A fixed strip on top for the suptitle: tight_layout's own allowance is a share of the height,
    # so in a tall figure (a row per model) the first row's titles ran into it.
    top = 1 - 0.45 / fig.get_figheight() if fig.get_suptitle() else 1
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig  # closed for pyplot, still inspectable


def _empty(path, message: str):
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return _save(fig, path)


def _ci_err(rows: pd.DataFrame, metric: str):
    """Asymmetric error bars from a cell table's 95% CI (0 where no CI could be computed)."""
    low = (rows[metric] - rows[f"{metric}_ci_low"]).fillna(0).clip(lower=0)
    high = (rows[f"{metric}_ci_high"] - rows[metric]).fillna(0).clip(lower=0)
    return [low.to_numpy(), high.to_numpy()]


def _base_line(ax, base: pd.DataFrame, metric: str, model: str):
    """The model's own base value as a dashed line with its CI as a band (one model's, never a mean)."""
    if base["model"].nunique() > 1 or len(base) > 1:
        raise ValueError(f"a base line needs one row of one model; got {len(base)} rows of {base['model'].unique()}")
    b = base.iloc[0]
    ax.axhline(b[metric], color="black", linestyle="--", linewidth=1, label=f"base model ({model})")
    ax.axhspan(b[f"{metric}_ci_low"], b[f"{metric}_ci_high"], color="black", alpha=0.08)


def plot_metric_by_arm(cells: pd.DataFrame, metric: str, path, worlds: dict | None = None):
    """A panel per model (row) and eval set (column) that trained arms were evaluated on: the metric of
    each arm with 95% CIs, and that model's own base value as a dashed line with its CI band. With
    several coverages x is the coverage (a line per arm); with one, x is the arm (a single coverage is
    no axis). Eval sets only the base model was evaluated on (the gate's) get no panel."""
    trained = cells[cells["method"] != "base"]
    if trained.empty:
        return _empty(path, "no trained model in this grid")
    models, eval_sets = list(dict.fromkeys(trained["model"])), list(dict.fromkeys(trained["eval_set"]))
    coverages = sorted(trained["coverage"].dropna().unique())
    by_coverage = len(coverages) > 1
    styles = _styles(trained)
    arms = list(styles)
    width = 4.6 if by_coverage else 1.2 + 0.75 * len(arms)
    fig, axes = plt.subplots(
        len(models),
        len(eval_sets),
        figsize=(width * len(eval_sets), 3.4 * len(models)),
        squeeze=False,
        sharey="row",
    )
    for row, model in enumerate(models):
        for col, eval_set in enumerate(eval_sets):
            ax = axes[row][col]
            here = cells[(cells["model"] == model) & (cells["eval_set"] == eval_set)]
            mine = here[here["method"] != "base"]
            if mine.empty:  # nothing but a base line: no panel
                ax.set_visible(False)
                continue
            base = here[here["method"] == "base"].sort_values("coverage")
            per_coverage = base["coverage"].notna().any()  # a subset eval set: the base on each subset
            if by_coverage and per_coverage:
                ax.plot(base["coverage"], base[metric], "k--", marker=".", linewidth=1, label=f"base model ({model})")
            elif len(base):
                _base_line(ax, base[base["coverage"] == coverages[0]] if per_coverage else base, metric, model)
            for cell, g in mine.groupby(CELL):
                g = g.sort_values("coverage")
                x = g["coverage"] if by_coverage else [arms.index(cell)] * len(g)
                label = _label(*cell) if by_coverage else None  # else the tick labels name the arms
                ax.errorbar(x, g[metric], yerr=_ci_err(g, metric), capsize=3, label=label, **styles[cell])
            if by_coverage:
                ax.set_xscale("log", base=2)
                ax.set_xticks(coverages, [_coverage(c) for c in coverages])
                ax.minorticks_off()
                ax.set_xlabel("task coverage (distinct training problems)")
            else:
                ax.set_xticks(range(len(arms)), [_label(*a, sep="\n") for a in arms], fontsize=8)
                ax.set_xlim(-0.6, len(arms) - 0.4)
            ax.set_title(f"{model_title(model, worlds)}\neval set: {eval_set}", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
        axes[row][0].set_ylabel(METRIC_LABELS.get(metric, metric))
    coverage = "" if by_coverage else f"; coverage {_coverage(coverages[0])}"
    fig.suptitle(
        f"{METRIC_LABELS.get(metric, metric)} per arm and model{coverage} (95% CI: seeds, then problems)", fontsize=10
    )
    return _save(fig, path)


def _runs(logs: pd.DataFrame) -> list[tuple]:
    """(model, coverage) pairs with runs, in order: a row of panels each."""
    return list(
        logs[["model", "coverage"]].drop_duplicates().sort_values(["model", "coverage"]).itertuples(index=False)
    )


def _row_title(model, coverage, worlds, n_coverages) -> str:
    title = model_title(model, worlds)
    return title if n_coverages <= 1 else f"{title}, coverage {_coverage(coverage)}"


def plot_train_loss(logs: pd.DataFrame, path, worlds: dict | None = None):
    """Offline methods' (SFT's) loss vs step: a panel per model and coverage, a colour per method,
    richness and ablation, a line per seed."""
    logs = logs[~logs["method"].isin(ROLLOUT_METHODS)]
    if logs.empty:
        return _empty(path, "no offline (SFT) training in this grid")
    panels, styles = _runs(logs), _styles(logs)
    n_coverages = logs["coverage"].nunique()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False, sharey=True)
    for ax, (model, coverage) in zip(axes[0], panels, strict=True):
        for cell, g in logs[(logs["model"] == model) & (logs["coverage"] == coverage)].groupby(CELL):
            for j, (_, run) in enumerate(g.groupby("seed")):
                style = {**styles[cell], "marker": None}
                ax.plot(run["step"], run["loss"], alpha=0.8, label=_label(*cell) if j == 0 else None, **style)
        ax.set_title(_row_title(model, coverage, worlds, n_coverages), fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("SFT loss (NLL per completion token)")
    return _save(fig, path)


def plot_training_curves(logs: pd.DataFrame, curves: pd.DataFrame, path, worlds: dict | None = None):
    """Rollout methods: eval-set accuracy at the checkpoints (step 0 = the base model), in-domain
    rollout reward, rollout length and epistemic words per rollout vs step; a row per model (and
    coverage, where the grid has several), a line per (method, richness, ablation): the mean over
    seeds, each seed as a thin line."""
    logs = logs[logs["method"].isin(ROLLOUT_METHODS)]
    if logs.empty:
        return _empty(path, "no rollout training (onpolicy, grpo) in this grid")
    panels = [(curves, "accuracy"), (logs, "reward"), (logs, "mean_length"), (logs, "epistemic_count")]
    rows, n_coverages = _runs(logs), logs["coverage"].nunique()
    styles = _styles(pd.concat([logs[CELL], curves[CELL]]))
    eval_set = curves["eval_set"].iloc[0] if len(curves) else "eval"
    # Each column on one scale across models, so a model's small change does not look like another's large one.
    fig, axes = plt.subplots(len(rows), 4, figsize=(17, 3.5 * len(rows)), squeeze=False, sharey="col")
    for row, (model, coverage) in enumerate(rows):
        for col, (table, metric) in enumerate(panels):
            ax = axes[row][col]
            sub = table[(table["model"] == model) & (table["coverage"] == coverage)]
            for cell, g in sub.groupby(CELL):
                style = styles[cell]
                marker = style["marker"] if metric == "accuracy" else None  # checkpoints are few: show them
                for _, seed in g.groupby("seed"):
                    ax.plot(seed["step"], seed[metric], color=style["color"], linewidth=0.6, alpha=0.35)
                mean = g.groupby("step")[metric].mean()
                ax.plot(mean.index, mean.to_numpy(), label=_label(*cell), **{**style, "marker": marker})
            label = f"{eval_set} accuracy (checkpoints)" if metric == "accuracy" else METRIC_LABELS[metric]
            ax.set_title(f"{_row_title(model, coverage, worlds, n_coverages)}\n{label}", fontsize=9)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("training step")
            ax.grid(alpha=0.3)
        axes[row][0].legend(fontsize=7)
    fig.suptitle("Training curves per model: bold = mean over seeds, thin = each seed", fontsize=10)
    return _save(fig, path)


def plot_factorial(cells: pd.DataFrame, path, eval_set: str = "ood", worlds: dict | None = None):
    """On-policy cells: eval-set accuracy vs epistemic density with 95% CIs on both axes; a panel
    per model (row) and coverage (column), no point labels to overlap; colour = ablation, marker =
    richness, the panel's own base model as a star."""
    here = cells[(cells["method"] == "onpolicy") & (cells["eval_set"] == eval_set)]
    if here.empty:
        return _empty(path, f"no on-policy model evaluated on {eval_set} in this grid")
    base = cells[(cells["method"] == "base") & (cells["eval_set"] == eval_set)]
    models, coverages = list(dict.fromkeys(here["model"])), sorted(here["coverage"].dropna().unique())
    fig, axes = plt.subplots(
        len(models), len(coverages), figsize=(5.2 * len(coverages), 4.4 * len(models)), squeeze=False, sharex=True
    )
    markers = {"none": "o", "answer": "s", "solution": "^", "solution_nothink": "v", "regen": "D"}
    colours = {"standard": "tab:blue", "preserve": "tab:green", "suppress": "tab:red"}
    for (row, model), (col, coverage) in ((r, c) for r in enumerate(models) for c in enumerate(coverages)):
        ax = axes[row][col]
        mine = here[(here["model"] == model) & (here["coverage"] == coverage)]
        for r in mine.itertuples():
            one = mine.loc[[r.Index]]
            ax.errorbar(
                r.epistemic_density,
                r.accuracy,
                xerr=_ci_err(one, "epistemic_density"),
                yerr=_ci_err(one, "accuracy"),
                marker=markers.get(r.richness, "x"),
                markersize=8,
                color=colours.get(r.ablation, "tab:gray"),
                capsize=3,
                linestyle="none",
                label=f"context {r.richness}, {r.ablation}",
            )
        b = base[(base["model"] == model) & (base["coverage"].isna() | (base["coverage"] == coverage))]
        for point in b.itertuples():  # the base model on the same problems
            ax.scatter(point.epistemic_density, point.accuracy, marker="*", s=180, color="black", label="base model")
        ax.set_title(f"{model_title(model, worlds)}, coverage {_coverage(coverage)}", fontsize=10)
        ax.set_xlabel("epistemic words per 1k tokens")
        ax.set_ylabel(f"{eval_set} accuracy (avg@n, 95% CI)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Uncertainty ablation: does OOD accuracy follow hedging or context?", fontsize=11)
    return _save(fig, path)


_ARROWS = {-1: "v", 0: "_", 1: "^"}  # predicted sign: lower, no effect, higher


def _arm_label(a, several_coverages: bool) -> str:
    parts = [a.method] + ([a.richness] if METHODS[a.method].teacher else [])
    parts += [a.ablation] if a.ablation != "standard" else []
    return "\n".join(parts + ([f"c{int(a.coverage)}"] if several_coverages else []))


PER_ROW = 3  # models per row of the organism figure: a default run's three draws of a world side by side


def plot_organism(effects: pd.DataFrame, cells: pd.DataFrame, path, ood: str = "ood", ood_on: str = "ood"):
    """A pair of panels per model (world or pretrained draw), PER_ROW models to a row: does OOD accuracy
    follow checking? Top: each arm's OOD accuracy sampled
    freely (filled) and with checking forced on (open), 95% CIs, the base model's as grey lines
    (dashed: free, dotted: forced on); along the top, the sign predicted before any result (grey
    triangle down: lower than the base, a bar: no effect). Bottom: epistemic words per response."""
    models = [m for m in dict.fromkeys(effects["model"]) if " - " not in m] if len(effects) else []
    arms_of = {
        m: effects[effects["model"] == m].drop_duplicates(["method", "richness", "ablation", "coverage"])
        for m in models
    }
    width = max([5.0] + [1.0 * len(a) + 1.5 for a in arms_of.values()])
    per_row = max(1, min(len(models), PER_ROW))
    blocks = max(1, -(-len(models) // per_row))
    fig, axes = plt.subplots(2 * blocks, per_row, figsize=(width * per_row, 7.5 * blocks), squeeze=False)
    if not models:
        axes[0][0].text(0.5, 0.5, "no toy model of a guess world in this grid", ha="center", va="center")
        return _save(fig, path)
    for unused in range(len(models), blocks * per_row):
        block, column = divmod(unused, per_row)
        axes[2 * block][column].set_visible(False)
        axes[2 * block + 1][column].set_visible(False)
    for i, model in enumerate(models):
        mine, arms = effects[effects["model"] == model], arms_of[model]
        block, column = divmod(i, per_row)
        top, bottom = axes[2 * block][column], axes[2 * block + 1][column]
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
            several = effects["coverage"].nunique() > 1
            ax.set_xticks(range(len(arms)), [_arm_label(a, several) for a in arms.itertuples()], fontsize=8)
            ax.set_xlim(-0.6, len(arms) - 0.4)
        top.set_ylim(-0.03, 1.03)
        bottom.set_ylim(bottom=0)
        top.set_title(f"{model} (world {mine['world'].iloc[0]})\n", fontsize=11)
        top.set_ylabel(f"OOD accuracy, 95% CI\n({ood}; {ood_on})")
        bottom.set_ylabel("epistemic words per OOD response")
        top.legend(fontsize=8, loc="best", title="grey lines: base; grey marks: predicted sign", title_fontsize=7)
    return _save(fig, path)
