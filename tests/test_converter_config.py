"""Shape gears and precision modes from converter .ini files, in the forms the guide uses."""

from __future__ import annotations

import pytest

from accuracy.config.converter import converter_from_ini, expand_gears, parse_input_shape
from accuracy.errors import ConfigError


def ini(tmp_path, text):
    path = tmp_path / "model.ini"
    path.write_text(text)
    return converter_from_ini(path)


def test_text_encoder_dynamic_gears(tmp_path):
    config = ini(tmp_path, '[acl_build_options]\ninput_format="ND"\ninput_shape="input_ids:1,-1"\nge.dynamicDims="77;33"\n')
    assert config.input_shape == {"input_ids": (1, -1)}
    assert config.gears == ({"input_ids": (1, 77)}, {"input_ids": (1, 33)})
    assert config.precision_mode is None


def test_unet_multi_input_gears_fill_minus_ones_in_order(tmp_path):
    config = ini(tmp_path, '[acl_build_options]\ninput_shape="sample:-1,4,64,64;timestep:1;'
                           'encoder_hidden_states:-1,77,768"\nge.dynamicDims="1,1;2,2;3,3"\n')
    assert len(config.gears) == 3
    assert config.gears[1] == {"sample": (2, 4, 64, 64), "timestep": (1,), "encoder_hidden_states": (2, 77, 768)}
    assert config.describe_gear(config.gears[0]) == "sample:1,4,64,64;timestep:1;encoder_hidden_states:1,77,768"


def test_ascend_context_static_shape_and_precision(tmp_path):
    config = ini(tmp_path, "[ascend_context]\ninput_shape=input_ids:[1,77]\nprecision_mode=enforce_fp32\n")
    assert config.gears == ({"input_ids": (1, 77)},)
    assert config.precision_mode == "enforce_fp32"


def test_mindspore_lite_bracket_gears_and_batch_sizes():
    shapes = parse_input_shape("x:-1,3", where="k")
    assert expand_gears(shapes, "[1],[4]", where="k") == ({"x": (1, 3)}, {"x": (4, 3)})


@pytest.mark.parametrize("text, where, words", [
    ('[acl_build_options]\ninput_shape="input_ids:1,-1"\nge.dynamicDims="77,1;33,1"\n', "ge.dynamicDims", "2 values for 1"),
    ('[acl_build_options]\ninput_shape="input_ids:1,-1"\n', "input_shape", "no ge.dynamicDims"),
    ('[acl_build_options]\ninput_shape="input_ids:1,x"\n', "input_shape", "integers"),
    ("[other]\na=1\n", None, "no [acl_build_options]"),
    ("input_shape=a:1\n", None, "malformed converter config"),
    ("[ascend_context]\ninput_shape=x:[1,4]\ninput_shape=x:[2,4]\n", None, "'input_shape' in section 'ascend_context' already exists"),
    ("[ascend_context]\ninput_shape=x:[1,99999999999999999999]\n", "input_shape", "dims must be -1 (dynamic) or 1.."),
    ("[ascend_context]\ninput_shape=x:[1,-2]\n", "input_shape", "dims must be -1 (dynamic) or 1.."),
    ('[acl_build_options]\ninput_shape="x:1,-1"\nge.dynamicDims="77;0"\n', "ge.dynamicDims", "gear 1 values must be 1.."),
])
def test_mistakes_name_file_and_key(tmp_path, text, where, words):
    with pytest.raises(ConfigError) as caught:
        ini(tmp_path, text)
    message = str(caught.value)
    assert str(tmp_path / "model.ini") in message and words in message
    if where:
        assert where in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        converter_from_ini(tmp_path / "nope.ini")
