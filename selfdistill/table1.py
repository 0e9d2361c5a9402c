"""The paper's Table 1: how the teacher's context changes its responses, on problems the model
finds hard (1-4 of 8 unguided samples correct).

As in the paper, the `solution` context of a problem is a correct unguided response of the same
model (not a dataset solution), `solution_nothink` that response without its <think> part, and
`regen` a correct response the model gave with the solution in context.
"""

from __future__ import annotations

import pandas as pd

# Kim et al., Table 1: DeepSeek-R1-Distill-Qwen-7B, 100 DAPO problems, 8 samples each.
PAPER = {
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": {
        "none": (0.30, 13054, 182.5),
        "solution": (0.98, 1873, 8.8),
        "solution_nothink": (0.78, 12036, 159.8),
        "regen": (0.95, 2808, 24.1),
    }
}


def selected_ids(unguided: pd.DataFrame, correct_range, n: int) -> list[str]:
    """The first n problems (in sampling order) with between correct_range[0] and [1] correct samples."""
    low, high = correct_range
    n_correct = unguided.groupby("problem_id", sort=False)["correct"].sum()
    chosen = list(n_correct[(n_correct >= low) & (n_correct <= high)].index[:n])
    if not chosen:
        raise ValueError(
            f"no problem has {low}-{high} of its unguided samples correct: widen table1.correct_range "
            "or raise table1.n_candidates"
        )
    return chosen


def select_problems(unguided: pd.DataFrame, problems: pd.DataFrame, correct_range, n: int) -> pd.DataFrame:
    """The selected problems, with `solution` replaced by the model's own first correct response
    (kept from the dataset for a problem the model never solved, possible only when correct_range
    starts at 0)."""
    chosen = selected_ids(unguided, correct_range, n)
    own = unguided[unguided["correct"]].sort_values("sample").groupby("problem_id")["response"].first()
    selected = problems.set_index("problem_id").loc[list(chosen)].reset_index()
    return selected.assign(solution=selected["problem_id"].map(own).fillna(selected["solution"]))


def table_rows(tables: dict) -> pd.DataFrame:
    """One row per richness: score (avg@n), mean length in tokens, mean epistemic count (paper's)."""
    rows = [
        {
            "richness": richness,
            "score": t["correct"].mean(),
            "length": t["n_tokens"].mean(),
            "epistemic_count": t["epistemic_count"].mean(),
            "n_problems": t["problem_id"].nunique(),
            "n_samples": len(t),
        }
        for richness, t in tables.items()
    ]
    return pd.DataFrame(rows)


def render(rows: pd.DataFrame, model: str, source: str) -> str:
    """Markdown in the paper's layout, with the paper's numbers beside ours when the model matches."""
    paper = PAPER.get(source, {})
    head = "| context | score | length (tokens) | epistemic count |"
    if paper:
        head += " paper score | paper length | paper epistemic count |"
    lines = [f"### {model} ({source})", "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows.itertuples():
        line = f"| {r.richness} | {r.score:.2f} | {r.length:,.0f} | {r.epistemic_count:.1f} |"
        if paper:
            p = paper.get(r.richness)
            line += f" {p[0]:.2f} | {p[1]:,} | {p[2]} |" if p else " | | |"
        lines.append(line)
    n = rows["n_problems"].max()
    return "\n".join(lines + ["", f"{n} problems; score = avg@n accuracy."])
