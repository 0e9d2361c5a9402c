"""Problem tables: one normalized schema, several sources, nested coverage subsets."""

PROBLEM_COLUMNS = ("problem_id", "problem", "solution", "answer", "source", "split")
