"""Three small MindSpore networks, chained by pipeline.py: encode -> mid -> decode.

``mid`` carries an fp16 hazard: it normalises its input by the square root of a sum of squares
whose activations reach a few hundred over 32 channels (~1e6, past fp16's 65504). In fp32 that is
harmless; in fp16 the sum is ``inf`` and the normalised vector collapses to zeros.
"""

from __future__ import annotations

from mindspore import nn, ops

WIDTH_IN, WIDTH, WIDTH_OUT = 16, 32, 8
MID_GAIN = 400.0


class Encode(nn.Cell):
    def __init__(self):
        super().__init__()
        self.dense = nn.Dense(WIDTH_IN, WIDTH)
        self.relu = nn.ReLU()

    def construct(self, x):
        return self.relu(self.dense(x))


class Mid(nn.Cell):
    """h -> gain * dense(h) -> divided by its L2 norm (the sum of squares overflows fp16)."""

    def __init__(self, gain: float = MID_GAIN):
        super().__init__()
        self.dense = nn.Dense(WIDTH, WIDTH)
        self.gain = gain
        self.sum = ops.ReduceSum(keep_dims=True)

    def construct(self, h):
        a = self.dense(h) * self.gain
        return a / ops.sqrt(self.sum(a * a, -1))


class Decode(nn.Cell):
    def __init__(self):
        super().__init__()
        self.dense = nn.Dense(WIDTH, WIDTH_OUT)
        self.tanh = nn.Tanh()

    def construct(self, u):
        return self.tanh(self.dense(u) * 4.0)


NETWORKS = {"encode": (Encode, "x", WIDTH_IN), "mid": (Mid, "h", WIDTH), "decode": (Decode, "u", WIDTH)}
