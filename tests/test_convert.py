"""``accuracy convert``: a diffusers-style ONNX folder through the real MindSpore Lite converter with
the guide's per-model .ini configs -- per-model result table, the converter's own error lines for a
model it rejects, Ascend-only keys named, results cached by content. The option mapping is pure and
tested without the converter."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from accuracy.cli import main
from accuracy.config.converter import converter_from_ini
from accuracy.convert.jobs import jobs_from_source
from accuracy.convert.options import converter_options


def _ini(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.ini"
    path.write_text(text)
    return path


def test_cpu_route_honours_a_static_shape_and_names_ascend_only_keys(tmp_path):
    gears = converter_from_ini(_ini(tmp_path, "te", '[acl_build_options]\ninput_format="ND"\n'
                                                    'input_shape="input_ids:1,-1"\nge.dynamicDims="77;33"\n'))
    options = converter_options(gears, target="cpu")
    assert "input_shape" not in options.request  # the CPU converter refuses -1 dims: the model stays dynamic
    assert options.not_applied == ("acl_build_options.input_format", "acl_build_options.ge.dynamicDims")
    assert any("ge.dynamicDims='77;33' is Ascend-only" in note for note in options.notes)

    static = converter_from_ini(_ini(tmp_path, "vae", "[ascend_context]\ninput_shape=latent_sample:[1,4,8,8]\n"
                                                      "precision_mode=enforce_fp32\n"))
    options = converter_options(static, target="cpu")
    assert options.request["input_shape"] == {"latent_sample": [1, 4, 8, 8]}
    assert options.not_applied == ("ascend_context.precision_mode",)
    # on Ascend the .ini goes to the converter as written, with the guide's optimize mode
    ascend = converter_options(static, target="ascend")
    assert ascend.request["config_file"] == static.source and ascend.request["optimize"] == "ascend_oriented"
    assert ascend.not_applied == ()


def test_sources_and_their_mistakes(tmp_path, embed_onnx):
    folder = tmp_path / "onnx_models"
    (folder / "unet").mkdir(parents=True)
    shutil.copy(embed_onnx, folder / "unet" / "model.onnx")
    with pytest.raises(Exception, match="no model_index.json"):
        jobs_from_source(folder)
    (folder / "model_index.json").write_text("{}")
    configs = tmp_path / "configs"
    configs.mkdir()
    _ini(configs, "unet", "[ascend_context]\ninput_shape=ids:[1,5];x:[1,5,8]\n")
    (job,) = jobs_from_source(folder, config_dir=configs)
    assert job.name == "unet" and job.config.gears == ({"ids": (1, 5), "x": (1, 5, 8)},)
    with pytest.raises(Exception, match="no model called vae"):
        jobs_from_source(folder, only=("vae",))
    assert main(["convert", str(tmp_path / "missing.txt")]) == 2


def test_a_model_that_is_a_pipe_or_a_folder_is_one_line_exit_2(tmp_path, capsys):
    """A named pipe as model.onnx hung ``accuracy convert`` forever (hashing it for the cache key);
    a folder called x.onnx was a traceback."""
    import os

    pipe = tmp_path / "pipe.onnx"
    os.mkfifo(pipe)
    (tmp_path / "dir.onnx").mkdir()
    diffusers = tmp_path / "sd"
    (diffusers / "unet").mkdir(parents=True)
    (diffusers / "model_index.json").write_text("{}")
    os.mkfifo(diffusers / "unet" / "model.onnx")
    for source, said in ((pipe, "named pipe"), (tmp_path / "dir.onnx", "not a diffusers"),
                         (diffusers, "named pipe")):
        assert main(["convert", str(source), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and said in err[0], err


def test_an_unwritable_out_folder_is_refused_before_converting(tmp_path, embed_onnx, capsys, monkeypatch):
    monkeypatch.setenv("ACCURACY_MSLITE_PYTHON", str(tmp_path / "no-python"))  # a conversion would fail on this
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["convert", str(embed_onnx), "--out", str(blocker / "sub"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and "no-python" not in err[0], err


def test_convert_a_diffusers_folder_for_real(mslite_python, embed_onnx, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACCURACY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ACCURACY_MSLITE_PYTHON", mslite_python)
    folder = tmp_path / "onnx_models"
    for name in ("text_encoder", "vae_decoder"):
        (folder / name).mkdir(parents=True)
        shutil.copy(embed_onnx, folder / name / "model.onnx")
    (folder / "unet").mkdir()
    (folder / "unet" / "model.onnx").write_bytes(b"not an onnx model")
    (folder / "model_index.json").write_text("{}")
    configs = tmp_path / "configs"
    configs.mkdir()
    _ini(configs, "text_encoder", '[acl_build_options]\ninput_format="ND"\ninput_shape="ids:1,-1;x:1,-1,8"\n'
                                  'ge.dynamicDims="5,5;9,9"\n')
    _ini(configs, "vae_decoder", "[ascend_context]\ninput_shape=ids:[1,5];x:[1,5,8]\nprecision_mode=enforce_fp32\n")
    out, record_path = tmp_path / "mindir_models", tmp_path / "convert.json"

    assert main(["convert", str(folder), "--config-dir", str(configs), "--out", str(out),
                 "--json", str(record_path), "--quiet"]) == 1
    record = json.loads(record_path.read_text())
    status = {m["name"]: m for m in record["models"]}
    assert record["failed"] == ["unet"] and status["unet"]["status"] == "failed"
    assert status["unet"]["error"].startswith("Converter model failed!")
    assert any("[ERROR]" in line for line in status["unet"]["log"])  # the converter's own lines
    assert status["text_encoder"]["status"] == status["vae_decoder"]["status"] == "converted"
    assert sorted(p.name for p in out.iterdir()) == ["text_encoder.mindir", "vae_decoder.mindir"]
    assert status["text_encoder"]["not_applied"] == ["acl_build_options.input_format", "acl_build_options.ge.dynamicDims"]
    assert status["vae_decoder"]["not_applied"] == ["ascend_context.precision_mode"]
    table = capsys.readouterr().out
    assert "unet          failed" in table and "unet: failed: Converter model failed!" in table
    assert "vae_decoder: ascend_context.precision_mode='enforce_fp32' is Ascend-only at conversion" in table
    assert "2 of 3 converted (cpu); failed: unet" in table

    # again: the two that converted come from the cache; the one that failed is tried again
    assert main(["convert", str(folder), "--config-dir", str(configs), "--json", str(record_path), "--quiet"]) == 1
    again = {m["name"]: m["status"] for m in json.loads(record_path.read_text())["models"]}
    assert again == {"text_encoder": "cached", "unet": "failed", "vae_decoder": "cached"}
    # a changed config is a different conversion
    _ini(configs, "vae_decoder", "[ascend_context]\ninput_shape=ids:[1,7];x:[1,7,8]\n")
    assert main(["convert", str(folder), "--model", "vae_decoder", "--config-dir", str(configs),
                 "--json", str(record_path), "--quiet"]) == 0
    assert json.loads(record_path.read_text())["models"][0]["status"] == "converted"


def test_groupnorm_rewrite_keeps_the_numbers_in_onnxruntime(tmp_path, embed_onnx):
    import numpy as np
    import onnx
    import onnxruntime as ort

    from accuracy.convert.rewrites import rewrite_for_mslite
    from tests.fixtures.mslite import groupnorm_model

    source, target = tmp_path / "gn.onnx", tmp_path / "gn_rewritten.onnx"
    onnx.save(groupnorm_model(), str(source))
    assert rewrite_for_mslite(source, target) == {"groupnorm-decomposed": 1}
    ops = [node.op_type for node in onnx.load(str(target)).graph.node]
    assert "InstanceNormalization" not in ops and ops.count("ReduceMean") == 2
    x = np.random.default_rng(0).standard_normal((1, 8, 4, 4)).astype(np.float32) * 3 + 1
    (want,) = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    (got,) = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # nothing to rewrite: nothing written
    assert rewrite_for_mslite(embed_onnx, tmp_path / "none.onnx") == {} and not (tmp_path / "none.onnx").exists()


def test_two_conversions_of_one_model_at_once_both_succeed(mslite_python, embed_onnx, tmp_path, monkeypatch):
    """Two runs converting the same model at the same time shared one staging folder: each deleted the
    other's, so one failed or hit a FileNotFoundError traceback on the rename."""
    import threading

    from accuracy.convert import convert_models
    from accuracy.convert.mindir import ConvertJob

    monkeypatch.setenv("ACCURACY_CACHE_DIR", str(tmp_path / "cache"))
    results, errors = {}, []

    def convert(index):
        try:
            results[index] = convert_models([ConvertJob("embed", embed_onnx)], python=mslite_python, use_cache=False)[0]
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=convert, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert [results[index].status for index in range(3)] == ["converted"] * 3
    assert all(results[index].mindir.exists() for index in range(3))
    assert [p.name for p in (tmp_path / "cache" / "mindir").iterdir() if ".partial" in p.name] == []


def test_a_killed_converters_staging_folder_is_removed_by_the_next(mslite_python, embed_onnx, tmp_path, monkeypatch):
    import subprocess
    import sys

    from accuracy.convert import convert_models
    from accuracy.convert.mindir import ConvertJob

    monkeypatch.setenv("ACCURACY_CACHE_DIR", str(tmp_path / "cache"))
    (result,) = convert_models([ConvertJob("embed", embed_onnx)], python=mslite_python)
    folder = result.mindir.parent
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True,
                          text=True)
    stale = folder.with_name(f"{folder.name}.partial-{dead.stdout.strip()}-1")
    live = folder.with_name(f"{folder.name}.partial-{os.getppid()}-1")
    for leftover in (stale, live):
        (leftover / "rewritten").mkdir(parents=True)
    convert_models([ConvertJob("embed", embed_onnx)], python=mslite_python, use_cache=False)
    assert not stale.exists() and live.exists()  # a live process's staging is left alone


@pytest.mark.parametrize("value", ["-1", "0", "1e300"])
def test_a_timeout_that_is_no_number_of_seconds_is_a_usage_error(value, embed_onnx, capsys):
    """--timeout -1 killed each worker at once ('did not answer within -1 s'); 1e300 was an OverflowError."""
    with pytest.raises(SystemExit) as caught:
        main(["convert", str(embed_onnx), "--timeout", value])
    assert caught.value.code == 2 and "give seconds in (0, 604800]" in capsys.readouterr().err


def test_a_config_naming_an_input_the_model_lacks_fails_that_model(tmp_path, embed_onnx, monkeypatch, capsys):
    """input_shape=zz:[1,4] for a model with inputs ids and x converted 'successfully' with the
    config silently not applied (the converter ignores a name it does not know)."""
    monkeypatch.setenv("ACCURACY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ACCURACY_MSLITE_PYTHON", str(tmp_path / "no-python"))  # reached only if not caught first
    configs = tmp_path / "configs"
    configs.mkdir()
    _ini(configs, "embed", "[ascend_context]\ninput_shape=zz:[1,4]\n")
    assert main(["convert", str(embed_onnx), "--config-dir", str(configs), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "embed: failed: the converter config" in out and "input_shape for zz, which the model does not have" in out
    assert "its inputs: ids, x" in out
