"""Figures a reader gets at a glance: distinct styles per arm, integer coverages, no overlapping
point labels."""

import itertools

import pandas as pd

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
    fig = plots.plot_metric_by_coverage(cells, "accuracy", tmp_path / "a.png")
    data_lines = [container.lines[0] for container in fig.axes[0].containers]  # one errorbar per arm
    styles = [(line.get_color(), line.get_linestyle(), line.get_marker()) for line in data_lines]
    assert len(styles) == 20 and len(set(styles)) == 20  # the default colour cycle repeats after ten arms


def test_factorial_has_a_panel_per_integer_coverage_and_no_point_labels(tmp_path):
    cells = cells_table(["none", "solution"], ["standard", "preserve", "suppress"], [1, 64])
    fig = plots.plot_factorial(cells, tmp_path / "f.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["coverage 1", "coverage 64"]
    assert all(not ax.texts for ax in fig.axes)  # labels beside points overlapped; panels replace them
    assert (tmp_path / "f.png").stat().st_size > 0


def test_the_organism_figure_has_a_column_per_world_and_draws_each_prediction(tmp_path):
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
    assert [t.get_text() for t in top.get_xticklabels()] == ["onpolicy\nsolution\nc64"]
    assert len(top.containers) == 2  # free and forced on
