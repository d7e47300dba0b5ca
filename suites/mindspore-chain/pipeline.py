"""The chain's entry (DESIGN.md's contract): ``run(models, inputs) -> {name: array}``.

Each ``models[name]`` takes keyword feeds and returns the model's outputs as a list.
"""

from __future__ import annotations

import numpy as np


def run(models, inputs) -> dict[str, np.ndarray]:
    (h,) = models["encode"](x=np.asarray(inputs["x"], dtype=np.float32))
    (u,) = models["mid"](h=h)
    (y,) = models["decode"](u=u)
    return {"y": y}
