"""Regenerate this suite's model files: ``python suites/mindspore-chain/build.py``.

Seeded MindSpore networks (networks.py) exported by ``mindspore.export`` with the same weights to
ONNX (``models/*.onnx``, the reference) and MINDIR in fp32 and fp16 (``mindir/*_fp32.mindir``,
``mindir/*_fp16.mindir``, the candidates), plus the pipeline input ``inputs/x.npy``.
Deterministic: same seed, same weights, same files' numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 20240611


def build(folder: Path = HERE) -> None:
    import mindspore as ms
    from mindspore import Tensor

    sys.path.insert(0, str(HERE))
    from networks import NETWORKS

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    for sub in ("models", "mindir", "inputs"):
        (folder / sub).mkdir(exist_ok=True)
    for index, (name, (network, input_name, width)) in enumerate(NETWORKS.items()):
        ms.set_seed(SEED + index)
        net = network()
        net.set_train(False)
        sample = Tensor(np.zeros((1, width), np.float32))
        _export(ms, net, sample, folder / "models" / name, "ONNX")
        _export(ms, net, sample, folder / "mindir" / f"{name}_fp32", "MINDIR")
        half = network()
        ms.load_param_into_net(half, net.parameters_dict())
        half.set_train(False)
        half.to_float(ms.float16)
        _export(ms, half, sample, folder / "mindir" / f"{name}_fp16", "MINDIR")
        assert input_name  # the ONNX input is named after construct()'s parameter
    rng = np.random.default_rng(SEED)
    np.save(folder / "inputs" / "x.npy", rng.uniform(0.5, 1.5, (1, NETWORKS["encode"][2])).astype(np.float32))


def _export(ms, net, sample, stem: Path, file_format: str) -> None:
    suffix = {"ONNX": ".onnx", "MINDIR": ".mindir"}[file_format]
    target = stem.with_suffix(suffix)
    if target.exists():
        target.chmod(0o644)
        target.unlink()
    ms.export(net, sample, file_name=str(stem), file_format=file_format)
    target.chmod(0o644)  # mindspore writes read-only files


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
