"""What a converter config asks of ``converter_lite``, split into what this target's converter
honours and what it cannot (Ascend-only keys), so nothing is dropped silently.

The guide's configs are written for ``--optimize=ascend_oriented`` (ACL/GE builds): on the CPU
converter ``input_shape`` is honoured when it fixes one static shape (a single gear); dynamic
gears (``ge.dynamicDims``), ``input_format`` and the conversion-time ``precision_mode`` are
Ascend-only, and each is named in the result with what happens instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accuracy.config.converter import ConverterConfig

TARGETS = ("cpu", "ascend", "gpu")
_GEAR_KEYS = ("ge.dynamicDims", "dynamic_dims", "dynamicDims", "dynamic_batch_size")


@dataclass(frozen=True)
class ConverterOptions:
    """The converter call for one model: its request fields and the keys it could not honour."""

    request: dict[str, Any]
    not_applied: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def converter_options(config: ConverterConfig | None, *, target: str = "cpu") -> ConverterOptions:
    """The ``convert`` request for ``target`` and, for each key it cannot apply, why."""
    request: dict[str, Any] = {"fmk": "ONNX", "optimize": "ascend_oriented" if target == "ascend" else "general"}
    if config is None:
        return ConverterOptions(request)
    if target == "ascend":  # the guide's own route: the config file goes to the converter as written
        request["config_file"] = config.source if config.source.endswith(".ini") else ""
        if not request["config_file"] and config.gears:
            request["input_shape"] = {k: list(v) for k, v in config.gears[0].items()}
        return ConverterOptions(request)
    not_applied, notes = [], []
    for where, value in config.settings:
        key = where.rsplit(".", 1)[-1] if not where.endswith("dynamicDims") else "ge.dynamicDims"
        if key == "input_shape":
            if len(config.gears) == 1:
                request["input_shape"] = {k: list(v) for k, v in config.gears[0].items()}
            else:
                notes.append(f"{where}={value!r}: dynamic (-1) dims are Ascend-only gears; the {target} model keeps "
                             f"the ONNX model's dynamic dims and each call's shape is set at run time")
        elif key in _GEAR_KEYS:
            not_applied.append(where)
            notes.append(f"{where}={value!r} is Ascend-only (ACL gears): not applied by the {target} converter; "
                         f"the model takes each gear's shape by Model.resize")
        elif key == "precision_mode":
            not_applied.append(where)
            notes.append(f"{where}={value!r} is Ascend-only at conversion: not applied by the {target} converter "
                         f"(on {target} the runtime context's precision_mode decides: [candidate] precision_mode)")
        elif key == "input_format":
            not_applied.append(where)
            notes.append(f"{where}={value!r} is Ascend-only (ACL input format): not applied by the {target} converter")
        else:
            not_applied.append(where)
            notes.append(f"{where}={value!r} is not understood by the {target} route: not applied")
    return ConverterOptions(request, tuple(not_applied), tuple(notes))
