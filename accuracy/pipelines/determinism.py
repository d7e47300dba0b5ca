"""Random operators in ONNX graphs, and private copies that make them reproducible.

diffusers' vae_encoder export samples its latent with ``RandomNormalLike`` and no seed: each call on
a session draws new numbers, and another process draws others. (Each new ORT session in a process
starts from the same state, so two fresh sessions agreeing once proves nothing.) Such a graph can
never match its converted twin bit for bit and would put its own noise on every comparison. We
give every random node a fixed ``seed`` attribute in a private copy (the user's file is untouched)
and open a fresh session per pipeline run, so call k of every run draws the same numbers in the
reference and in the candidate, in every process.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

RANDOM_OPS = ("RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli")
PRIVATE_SEED = 20240101.0


@dataclass(frozen=True)
class RandomNode:
    name: str
    op_type: str
    seeded: bool


def random_nodes(model_path: Path) -> list[RandomNode]:
    """The random nodes of an ONNX file (empty for other formats or unreadable files)."""
    if model_path.suffix.lower() != ".onnx":
        return []
    import onnx

    from accuracy.backends.onnxrt.weights import light_model

    try:  # the graph only: a scan that leaves the weights unread, else the ordinary parse
        light = light_model(model_path, 0)
        model = light[0] if light is not None else onnx.load(str(model_path), load_external_data=False)
    except Exception:  # noqa: BLE001 -- not ours to report: the backend's load will say what is wrong
        return []
    found = []
    for node in _all_nodes(model.graph):
        if node.op_type in RANDOM_OPS:
            seeded = any(attr.name == "seed" for attr in node.attribute)
            found.append(RandomNode(node.name or node.output[0], node.op_type, seeded))
    return found


def seeded_copy(model_path: Path, folder: Path, *, seed: float = PRIVATE_SEED) -> Path:
    """A copy of ``model_path`` in ``folder`` whose random nodes all carry ``seed`` (cached by content)."""
    import onnx

    digest = hashlib.blake2b(model_path.read_bytes(), digest_size=12).hexdigest()
    target = folder / f"{model_path.stem}-seeded-{digest}.onnx"
    if target.exists():
        return target
    external = any(init.data_location == onnx.TensorProto.EXTERNAL
                   for init in onnx.load(str(model_path), load_external_data=False).graph.initializer)
    model = onnx.load(str(model_path))
    for index, node in enumerate(_all_nodes(model.graph)):
        if node.op_type in RANDOM_OPS:
            kept = [attr for attr in node.attribute if attr.name != "seed"]
            del node.attribute[:]
            node.attribute.extend(kept + [onnx.helper.make_attribute("seed", float(seed + index))])
    folder.mkdir(parents=True, exist_ok=True)
    # written in a private folder, then moved into place (data first): parallel processes never
    # write the same file, and a model file in place always has its data beside it
    private = Path(tempfile.mkdtemp(prefix=f".{target.stem}.", dir=folder))
    try:
        if external:  # weights over 2 GB stay outside the protobuf, beside the private copy
            data = f"{target.name}.data"
            onnx.save(model, str(private / target.name), save_as_external_data=True, all_tensors_to_one_file=True,
                      location=data)
            os.replace(private / data, folder / data)
        else:
            onnx.save(model, str(private / target.name))
        os.replace(private / target.name, target)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return target


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g is not None and attr.g.node:
                yield from _all_nodes(attr.g)
            for sub in attr.graphs:
                yield from _all_nodes(sub)
