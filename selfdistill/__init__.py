"""Self-distillation vs. epistemic verbalization: the logic behind the Snakemake workflow."""

__version__ = "0.1.0"
