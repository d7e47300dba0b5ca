#!/usr/bin/env bash
# Real MindSpore Lite for the tests: a Python 3.7 venv at <repo>/.venv-mslite with the official
# mindspore-lite 2.0.0 wheel (runtime + converter; PyPI has it for cp37 only, 168 MB).
# Idempotent (an import check skips the work), keeps pip's download cache, prints its wall time.
# Never fails CI: without python3.7 or the wheel it says why, and the MindSpore Lite tests skip.
set -uo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
venv=.venv-mslite
done_msg() { echo "install-mindspore-lite: $1 ($(( $(date +%s) - started )) s)"; }

if [[ -x $venv/bin/python ]] && $venv/bin/python -c "import mindspore_lite, numpy" 2>/dev/null; then
  done_msg "already installed in $venv"; exit 0
fi
python37=""
if command -v pyenv >/dev/null 2>&1; then
  version=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.7(\.[0-9]+)?$' | sort -V | tail -n 1)
  if [[ -n $version && -x $(pyenv root)/versions/$version/bin/python ]]; then
    python37=$(pyenv root)/versions/$version/bin/python
  fi
fi
if [[ -z $python37 ]] && command -v python3.7 >/dev/null 2>&1 && python3.7 -c "" 2>/dev/null; then
  python37=$(command -v python3.7)
fi
if [[ -z $python37 ]]; then
  done_msg "skipped: no Python 3.7 interpreter (pyenv or python3.7 on PATH); the MindSpore Lite tests will skip"
  exit 0
fi
rm -rf "$venv"
if ! "$python37" -m venv "$venv"; then
  done_msg "skipped: $python37 -m venv failed; the MindSpore Lite tests will skip"; rm -rf "$venv"; exit 0
fi
# pip's cache stays on (no --no-cache-dir): a second CI run on the same runner reuses the 168 MB wheel
if ! "$venv/bin/python" -m pip install -q "numpy==1.21.6" "mindspore-lite==2.0.0"; then
  done_msg "skipped: pip could not install mindspore-lite==2.0.0; the MindSpore Lite tests will skip"
  rm -rf "$venv"; exit 0
fi
"$venv/bin/python" -c "import mindspore_lite; print('mindspore_lite', mindspore_lite.__version__)" || true
done_msg "installed into $venv"
