"""Problem tables: one normalized schema, several sources, nested coverage subsets."""

PROBLEM_COLUMNS = ("problem_id", "problem", "solution", "answer", "source", "split")
TOY_SPLITS = ("train", "test", "ood")  # the toy generator's splits: in-domain training / held-out, and OOD
