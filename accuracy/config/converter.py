"""Shape gears and precision modes from converter configs (``converter_lite --configFile=x.ini``).

A converted model only accepts the shapes its config fixed. The guide's forms, all read here:

```ini
[acl_build_options]                    # dynamic gears: each -1 takes one value per gear
input_format="ND"
input_shape="input_ids:1,-1"
ge.dynamicDims="77;33"                 # -> input_ids (1,77) and (1,33)

[ascend_context]                       # static shape and precision
input_shape=input_ids:[1,77]
precision_mode=enforce_fp32
```
Multi-input: ``input_shape="sample:-1,4,64,64;timestep:1;encoder_hidden_states:-1,77,768"`` with
``ge.dynamicDims="1,1;2,2"`` (the -1s in input order). ``dynamic_dims`` and ``dynamic_batch_size`` are
accepted as other spellings. A suite may give the same keys inline under ``[converter.<model>]``
(``input_shape``, ``dynamic_dims``, ``precision_mode``).
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path

from accuracy.config.suite import TableReader
from accuracy.errors import ConfigError, InputError
from accuracy.io import read_text

SECTIONS = ("acl_build_options", "ascend_context")
_DIMS_KEYS = ("ge.dynamicDims", "dynamic_dims", "dynamicDims")
Shape = tuple[int, ...]
MAX_DIM = 2**31 - 1  # the converter's dims are int32


@dataclass(frozen=True)
class ConverterConfig:
    """What a converter config fixes for one model: the input shapes of each gear and the precision."""

    source: str
    input_shape: dict[str, Shape] = field(default_factory=dict)
    gears: tuple[dict[str, Shape], ...] = ()
    precision_mode: str | None = None
    settings: tuple[tuple[str, str], ...] = ()  # every key as written (section.key or table key) and its value

    def describe_gear(self, gear: dict[str, Shape]) -> str:
        return ";".join(f"{name}:{','.join(map(str, shape))}" for name, shape in gear.items())


def parse_input_shape(text: str, *, where: str, path: str | Path | None = None) -> dict[str, Shape]:
    """``"a:1,-1;b:[2,3]"`` -> ``{"a": (1, -1), "b": (2, 3)}``."""
    shapes: dict[str, Shape] = {}
    for part in _unquote(text).split(";"):
        part = part.strip()
        if not part:
            continue
        name, sep, dims = part.rpartition(":")
        if not sep or not name:
            raise ConfigError(f"expected name:dims, got {part!r}", path=path, where=where)
        try:
            shape = tuple(int(d) for d in dims.strip().strip("[]").split(",") if d.strip())
        except ValueError:
            raise ConfigError(f"dims must be integers (-1 for dynamic), got {dims!r}", path=path, where=where) from None
        if any(not (d == -1 or 0 < d <= MAX_DIM) for d in shape):
            raise ConfigError(f"dims must be -1 (dynamic) or 1..{MAX_DIM}, got {dims.strip()!r}", path=path,
                              where=where)
        shapes[name.strip()] = shape
    if not shapes:
        raise ConfigError("empty input_shape", path=path, where=where)
    return shapes


def expand_gears(shapes: dict[str, Shape], dims_text: str | None, *, where: str,
                 path: str | Path | None = None) -> tuple[dict[str, Shape], ...]:
    """Concrete shapes for each gear: the i-th value of a gear fills the i-th -1 across the inputs."""
    dynamic = sum(dim == -1 for shape in shapes.values() for dim in shape)
    if not dims_text:
        if dynamic:
            raise ConfigError(f"input_shape has {dynamic} dynamic (-1) dims but no ge.dynamicDims gears",
                              path=path, where=where)
        return (dict(shapes),)
    gears = []
    for index, raw in enumerate(_split_gears(_unquote(dims_text))):
        try:
            values = [int(v) for v in raw.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"gear {index} must be integers, got {raw!r}", path=path, where=where) from None
        if any(not 0 < value <= MAX_DIM for value in values):
            raise ConfigError(f"gear {index} values must be 1..{MAX_DIM}, got {raw!r}", path=path, where=where)
        if len(values) != dynamic:
            raise ConfigError(f"gear {index} ({raw!r}) has {len(values)} values for {dynamic} dynamic dims",
                              path=path, where=where)
        filled, it = {}, iter(values)
        for name, shape in shapes.items():
            filled[name] = tuple(next(it) if dim == -1 else dim for dim in shape)
        gears.append(filled)
    return tuple(gears)


def converter_from_ini(path: Path) -> ConverterConfig:
    """Read a converter .ini (``[acl_build_options]`` and/or ``[ascend_context]``)."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)  # a key twice: which would count?
    parser.optionxform = str  # keys are case-sensitive: ge.dynamicDims
    try:
        parser.read_string(read_text(path, what="converter config"), source=str(path))
    except InputError as exc:  # not found, not a regular file (a named pipe is not waited on) ...
        raise ConfigError(exc.message, path=path) from None
    except (configparser.Error, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"malformed converter config: {str(exc).splitlines()[0]}", path=path) from None
    values: dict[str, tuple[str, str]] = {}
    for section in SECTIONS:
        if parser.has_section(section):
            for key, value in parser.items(section):
                values.setdefault(key, (value, f"{section}.{key}"))
    if not values:
        raise ConfigError(f"no [{'] or ['.join(SECTIONS)}] section", path=path)
    return _build(values, path=path)


def converter_from_table(table: TableReader) -> ConverterConfig:
    """The same keys inline in a suite (``[converter.<model>]``)."""
    values = {}
    for key in list(table.data):
        value = table.get(key, (str, int))
        values[key] = (str(value), table.key(key))
    table.reject_unknown(("input_shape", "dynamic_dims", "ge.dynamicDims", "dynamic_batch_size",
                          "precision_mode", "input_format"))
    return _build(values, path=table.path)


def _build(values: dict[str, tuple[str, str]], *, path: Path) -> ConverterConfig:
    shapes: dict[str, Shape] = {}
    gears: tuple[dict[str, Shape], ...] = ()
    if "input_shape" in values:
        text, where = values["input_shape"]
        shapes = parse_input_shape(text, where=where, path=path)
        dims = next((values[key] for key in _DIMS_KEYS if key in values), None)
        if dims is None and "dynamic_batch_size" in values:
            batch, where_b = values["dynamic_batch_size"]
            dims = (";".join(v.strip() for v in _unquote(batch).split(",")), where_b)
        gears = expand_gears(shapes, dims[0] if dims else None, where=dims[1] if dims else where, path=path)
    precision = values.get("precision_mode", (None, ""))[0]
    return ConverterConfig(source=str(path), input_shape=shapes, gears=gears,
                           precision_mode=_unquote(precision) if precision else None,
                           settings=tuple((where, _unquote(value)) for value, where in values.values()))


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _split_gears(text: str) -> list[str]:
    """``"77;33"`` or MindSpore Lite's ``"[1],[2]"`` -> one string per gear."""
    if "[" in text:
        return [part.strip("[] ") for part in text.split("],")]
    return [part for part in text.split(";") if part.strip()]
