"""Figures a reader gets at a glance: distinct styles per arm, integer coverages, no overlapping
point labels."""

import itertools

import pandas as pd
import pytest

from selfdistill import plots


def cells_table(richness, ablations, coverages, eval_set="ood"):
    rows = [{"model": "toy", "method": "base", "richness": "none", "ablation": "standard", "coverage": float("nan")}]
    for method, r, a, c in itertools.product(("sft", "onpolicy"), richness, ablations, coverages):
        rows.append({"model": "toy", "method": method, "richness": r, "ablation": a, "coverage": float(c)})
    table = pd.DataFrame(rows).assign(eval_set=eval_set)
    for i, metric in enumerate(("accuracy", "epistemic_density", "epistemic_count", "mean_tokens")):
        table[metric] = 0.1 * (i + 1) + 0.01 * table.index
        table[f"{metric}_ci_low"] = table[metric] - 0.02
        table[f"{metric}_ci_high"] = table[metric] + 0.02
    return table


def test_every_arm_has_its_own_style(tmp_path):
    cells = cells_table(["none", "answer", "solution", "solution_nothink", "regen"], ["standard", "preserve"], [1, 64])
    fig = plots.plot_metric_by_arm(cells, "accuracy", tmp_path / "a.png")
    data_lines = [container.lines[0] for container in fig.axes[0].containers]  # one errorbar per arm
    styles = [(line.get_color(), line.get_linestyle(), line.get_marker()) for line in data_lines]
    assert len(styles) == 20 and len(set(styles)) == 20  # the default colour cycle repeats after ten arms


def test_factorial_has_a_panel_per_integer_coverage_and_no_point_labels(tmp_path):
    cells = cells_table(["none", "solution"], ["standard", "preserve", "suppress"], [1, 64])
    fig = plots.plot_factorial(cells, tmp_path / "f.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["toy, coverage 1", "toy, coverage 64"]
    assert all(not ax.texts for ax in fig.axes)  # labels beside points overlapped; panels replace them
    assert (tmp_path / "f.png").stat().st_size > 0


def test_the_organism_figure_has_a_panel_pair_per_model_and_draws_each_prediction(tmp_path):
    """One column per world (the between-world rows get none), free and forced-on accuracy per arm,
    and a grey prediction mark per arm in both rows: down for a predicted drop, a bar for none."""
    cells = pd.concat(
        [
            cells_table(["solution"], ["standard"], [64], e).assign(model=m)
            for m in ("toy", "toy_null")
            for e in ("ood", "on")
        ]
    )
    effects = pd.DataFrame(
        [
            {
                "model": m,
                "world": w,
                "method": "onpolicy",
                "richness": "solution",
                "ablation": "standard",
                "coverage": 64,
                "quantity": q,
                "predicted": p,
            }
            for m, w, preds in (
                ("toy", "guess_check", (-1, -1)),
                ("toy_null", "null", (0, -1)),
                ("toy - toy_null", "x", (-1, 0)),
            )
            for q, p in zip(("ood", "epistemic"), preds, strict=True)
        ]
    )
    fig = plots.plot_organism(effects, cells, tmp_path / "o.png", "ood", "on")
    assert len(fig.axes) == 4  # 2 rows x 2 worlds
    # axes order: row 0 (toy, null), row 1 (toy, null)
    for ax, mark in zip(fig.axes, ["v", "_", "v", "v"], strict=True):
        predicted = [line.get_marker() for line in ax.lines if line.get_color() == "0.5"]
        assert predicted == [mark]
    top = fig.axes[0]
    assert [t.get_text() for t in top.get_xticklabels()] == ["onpolicy\nsolution"]  # one coverage: no need to name it
    assert len(top.containers) == 2  # free and forced on

    # Seven models wrap into rows of three: 3 blocks of (accuracy, epistemic) rows; 2 unused pairs hidden.
    draws = [f"toy_s{i}" for i in range(7)]
    many = pd.concat([effects[effects["model"] == "toy"].assign(model=m) for m in draws])
    cells_of = pd.concat([cells[cells["model"] == "toy"].assign(model=m) for m in draws])
    fig = plots.plot_organism(many, cells_of, tmp_path / "o7.png", "ood", "on")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 18 and len(visible) == 14
    assert [ax.get_title().strip() for ax in visible[:3]] == [f"toy_s{i} (world guess_check)" for i in range(3)]


# ---- never pool models: two worlds with different base models ---------------------------------------------

BASES = {"toy": 0.71, "toy_null": 0.45}  # the default worlds' OOD accuracy; their mean, 0.58, is no model's
WORLDS = {"toy": "guess_check", "toy_null": "null"}


def two_worlds(eval_sets=("ood", "ood_checks_on"), coverages=(64,), base_only=("ood_checks_off",)):
    """Cell estimates of two models: the base model on every eval set, trained arms on `eval_sets`;
    each value is its model's base value minus a per-arm drop, so any mixing of models shows."""
    rows = []
    arms = [("onpolicy", "none"), ("onpolicy", "solution"), ("grpo", "none")]
    for model, base in BASES.items():
        for eval_set in (*eval_sets, *base_only):
            rows.append(
                {
                    "model": model,
                    "method": "base",
                    "richness": "none",
                    "coverage": float("nan"),
                    "eval_set": eval_set,
                    "value": base,
                }
            )
        for eval_set, (method, richness), coverage in itertools.product(eval_sets, arms, coverages):
            drop = 0.2 if richness == "solution" else 0.01
            rows.append(
                {
                    "model": model,
                    "method": method,
                    "richness": richness,
                    "coverage": float(coverage),
                    "eval_set": eval_set,
                    "value": base - drop - 0.001 * coverage,
                }
            )
    table = pd.DataFrame(rows).assign(ablation="standard")
    for metric in ("accuracy", "epistemic_density", "epistemic_count", "mean_tokens"):
        table[metric] = table["value"]
        table[f"{metric}_ci_low"], table[f"{metric}_ci_high"] = table[metric] - 0.02, table[metric] + 0.02
    return table


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def _owner(ax) -> str:
    """The one model a panel's title names."""
    named = [m for m in BASES if f"{m} (world {WORLDS[m]})" in ax.get_title()]
    assert len(named) == 1, ax.get_title()
    return named[0]


def test_each_model_has_its_own_base_line_and_its_own_panels(tmp_path):
    cells = two_worlds()
    fig = plots.plot_metric_by_arm(cells, "accuracy", tmp_path / "a.png", WORLDS)
    for ax in _panels(fig):
        model = _owner(ax)
        base_lines = [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == "--"]
        assert base_lines == [BASES[model]]  # its own base, never the mean of the two (0.58)
        points = [y for c in ax.containers for y in c.lines[0].get_ydata()]
        mine = cells[(cells["model"] == model) & (cells["method"] != "base")]["accuracy"]
        assert points and set(points) <= set(mine)  # only this model's arms


def test_a_single_coverage_is_not_an_axis_and_a_base_only_panel_is_not_drawn(tmp_path):
    fig = plots.plot_metric_by_arm(two_worlds(), "accuracy", tmp_path / "a.png", WORLDS)
    panels = _panels(fig)
    assert len(panels) == 4  # 2 models x 2 eval sets with trained arms; ood_checks_off has the base only
    assert all("ood_checks_off" not in ax.get_title() for ax in panels)
    assert all("coverage" not in ax.get_xlabel() for ax in panels)
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["grpo", "onpolicy\nnone", "onpolicy\nsolution"]
    by_coverage = plots.plot_metric_by_arm(two_worlds(coverages=(8, 64)), "accuracy", tmp_path / "b.png", WORLDS)
    assert all("coverage" in ax.get_xlabel() for ax in _panels(by_coverage))
    assert [t.get_text() for t in _panels(by_coverage)[0].get_xticklabels()] == ["8", "64"]


def curve_tables():
    """Training logs and OOD curves of one arm in two models, 3 seeds, steps 0-12 every 3; each
    model's OOD curve starts at its own base value."""
    logs, curves = [], []
    for model, base in BASES.items():
        for seed, step in itertools.product(range(3), range(13)):
            run = {"model": model, "method": "onpolicy", "richness": "solution", "ablation": "standard"}
            run |= {"coverage": 64, "seed": seed, "step": step}
            logs.append(
                {
                    **run,
                    "reward": base + 0.01 * step,
                    "mean_length": 100 * base - step,
                    "epistemic_count": base - 0.02 * step,
                }
            )
            if step % 3 == 0:
                curves.append(
                    {**run, "eval_set": "ood", "accuracy": base - (0.01 * step + 0.001 * seed if step else 0)}
                )
    return pd.DataFrame(logs), pd.DataFrame(curves)


def test_each_model_has_its_own_training_curves(tmp_path):
    logs, curves = curve_tables()
    fig = plots.plot_training_curves(logs, curves, tmp_path / "c.png", WORLDS)
    assert len(_panels(fig)) == 8  # a row per model, 4 quantities
    columns = {0: (curves, "accuracy"), 1: (logs, "reward"), 2: (logs, "mean_length"), 3: (logs, "epistemic_count")}
    for i, ax in enumerate(_panels(fig)):
        model, (table, metric) = _owner(ax), columns[i % 4]
        mine = table[table["model"] == model]
        expected = [g[metric].to_numpy() for _, g in mine.groupby("seed")] + [mine.groupby("step")[metric].mean()]
        assert len(ax.lines) == len(expected)
        for line, values in zip(ax.lines, expected, strict=True):
            assert list(line.get_ydata()) == pytest.approx(list(values))
    ood = [ax for ax in _panels(fig) if "ood accuracy" in ax.get_title()]
    assert [ax.lines[-1].get_ydata()[0] for ax in ood] == pytest.approx([BASES["toy"], BASES["toy_null"]])


def test_the_title_of_a_tall_figure_stays_clear_of_its_panels(tmp_path):
    """A training-curve figure of 8 models (the organism's full design): the figure's title overlapped
    the first row's panel titles when tight_layout gave it a share of the height."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    logs, curves = curve_tables()
    copies = range(4)  # 2 models x 4 = 8 rows
    logs = pd.concat([logs.assign(model=logs["model"] + f"_{k}") for k in copies])
    curves = pd.concat([curves.assign(model=curves["model"] + f"_{k}") for k in copies])
    worlds = {f"{m}_{k}": w for m, w in WORLDS.items() for k in copies}
    fig = plots.plot_training_curves(logs, curves, tmp_path / "c.png", worlds)
    renderer = FigureCanvasAgg(fig).get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    assert len(fig.axes) == 32 and not any(title.overlaps(ax.title.get_window_extent(renderer)) for ax in fig.axes)
