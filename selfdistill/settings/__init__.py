"""Every setting of the workflow, declared once: each config section is a frozen dataclass whose
fields carry the type, the constraints, the default (where there is one) and the help (the string
under the field). From these the JSON schema is generated (`settings.workflow.schema`), defaults are
filled in, jobs build their typed sections, and docs/configuration-reference.md is written.

One module per idea, each with its sections' cross-field checks beside the classes (a `check`
static method): data, models, prompts, generation (teacher, eval sets, generation), grading,
training (LoRA, full fine-tuning, the rollout engine), methods (SFT, on-policy, GRPO), toy
(pretraining the toy model), organism (the gate), table1; `core` is how a setting is declared and
what is derived from the declarations, `workflow` the whole config.

This package imports nothing heavy (the Snakefile loads it to check the config), and a job imports
only the modules of the sections it reads, so that editing one re-runs only the jobs that use it.
This file imports none of them for the same reason.
"""
