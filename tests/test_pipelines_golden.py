"""Pipeline suites with ``[golden]``: every case judged against its stored golden image, goldens
written only by ``accuracy baseline record --force`` / ``--accuracy-update-baselines``.

Fast tests use a one-model "painter" pipeline (a Python entry, an image and latents out); the slow
ones run the shipped ``suites/tiny-sd-img2img`` over the tiny Stable Diffusion pipeline.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accuracy.cli import main
from accuracy.config import load_suite
from accuracy.config.pipeline import load_pipeline_spec
from accuracy.errors import ConfigError

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "suites" / "tiny-sd-img2img" / "suite.toml"
SIDE = 16

ENTRY = '''\
import numpy as np

def run(models, inputs):
    noise = np.random.default_rng(int(inputs["seed"])).standard_normal((1, 8)).astype(np.float32)
    latents, pixels = models["paint"](z=noise)
    return {"image": pixels.reshape(1, 16, 16, 3), "latents": latents}
'''

SUITE = '''\
[suite]
name = "painter"
[pipeline]
entry = "pipeline.py:run"
[pipeline.models]
paint = "models/paint.onnx"
[pipeline.inputs]
prompt = "a painting"
seed = 0
[reference]
backend = "onnxruntime"
[candidate]
backend = "onnxruntime"
{candidate}
[golden]
folder = "baselines/painter"
latents = "latents"
{golden}
[golden.cases.first]
[golden.cases.second]
seed = {second_seed}
'''


def paint_model(*, noise: float = 0.0) -> onnx.ModelProto:
    """z (1, 8) -> MatMul -> latents (1, 768) -> Sigmoid -> pixels in 0..1; ``noise`` corrupts the weights."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, SIDE * SIDE * 3)).astype(np.float32)
    w += (noise * rng.standard_normal(w.shape)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["z", "w"], ["latents"], name="paint_matmul"),
             helper.make_node("Sigmoid", ["latents"], ["pixels"], name="paint_sigmoid")]
    graph = helper.make_graph(
        nodes, "paint", [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("latents", TensorProto.FLOAT, [1, SIDE * SIDE * 3]),
         helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, SIDE * SIDE * 3])],
        [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def painter(folder: Path, *, broken: bool = False, golden: str = "", second_seed: int = 1) -> Path:
    """The painter suite in ``folder``; ``broken`` gives the candidate a corrupted copy of the model."""
    (folder / "models").mkdir(parents=True, exist_ok=True)
    onnx.save(paint_model(), str(folder / "models" / "paint.onnx"))
    candidate = ""
    if broken:
        onnx.save(paint_model(noise=1.0), str(folder / "models" / "paint-broken.onnx"))
        candidate = '[candidate.models]\npaint = "models/paint-broken.onnx"'
    (folder / "pipeline.py").write_text(ENTRY)
    suite = folder / "suite.toml"
    suite.write_text(SUITE.format(candidate=candidate, golden=golden, second_seed=second_seed))
    return suite


@pytest.fixture
def artifacts(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "artifacts"
    monkeypatch.setenv("ACCURACY_ARTIFACTS", str(folder))
    return folder


def gate(suite: Path, json_path: Path) -> tuple[int, dict]:
    code = main(["gate", str(suite), "--json", str(json_path)])
    return code, json.loads(json_path.read_text())["suites"][0]


def checks_of(result: dict) -> dict[str, bool]:
    return {check["name"]: check["passed"] for check in result["checks"]}


# -- the [golden] section ---------------------------------------------------------------------------
def test_golden_section_defaults(tmp_path):
    suite = painter(tmp_path / "suites" / "painter")
    text = suite.read_text().replace('folder = "baselines/painter"\n', "").replace('latents = "latents"\n', "")
    suite.write_text(text.split("[golden.cases.first]")[0])
    golden = load_pipeline_spec(load_suite(suite)).golden
    assert golden.folder == (tmp_path / "baselines" / "painter").resolve()  # <suite folder>/../../baselines/<name>
    assert golden.outputs == ("image",) and golden.latents is None and golden.backend == "candidate"
    assert list(golden.cases) == ["default"] and not golden.explicit_cases
    assert (golden.thresholds.ssim_min, golden.thresholds.psnr_min) == (0.98, 30.0)


@pytest.mark.parametrize("change,where,words", [
    ('outputs = "image"', "golden.outputs", "must be a list"),
    ('outputs = []', "golden.outputs", "at least one"),
    ('outputs = ["im age"]', "golden.outputs", "output names"),
    ('backend = "gpu"', "golden.backend", "candidate, reference"),
    ('psnr_min = "high"', "golden.psnr_min", "must be a number"),
    ('ssim_min = 1.5', "golden.ssim_min", "must be <= 1"),  # every image failed
    ('outputs = ["image", "latents"]', "golden.latents", "listed in outputs too"),
    ('folders = "x"', "golden.folders", "unknown key"),
])
def test_golden_mistakes_name_file_and_key(tmp_path, change, where, words):
    suite = painter(tmp_path, golden=change)
    with pytest.raises(ConfigError) as caught:
        load_pipeline_spec(load_suite(suite))
    assert f"[{where}]" in str(caught.value) and words in str(caught.value) and str(suite) in str(caught.value)


def test_golden_case_mistakes_name_the_case(tmp_path):
    suite = painter(tmp_path)
    suite.write_text(suite.read_text() + '[golden.cases."bad name"]\n')
    with pytest.raises(ConfigError, match=r"\[golden\.cases\.bad name\].*letters, digits"):
        load_pipeline_spec(load_suite(suite))
    suite.write_text(suite.read_text().replace('[golden.cases."bad name"]\n', "") + "[golden.cases.third]\n"
                     'seed = "inputs/missing.npy"\n')
    with pytest.raises(ConfigError, match=r"\[golden\.cases\.third\.seed\].*file not found"):
        load_pipeline_spec(load_suite(suite))


def test_builtin_must_be_a_known_pipeline(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text('[pipeline]\nbuiltin = "huge-sd"\n[reference]\nbackend = "onnxruntime"\n'
                     '[candidate]\nbackend = "onnxruntime"\n')
    with pytest.raises(ConfigError, match=r"\[pipeline\.builtin\].*tiny-sd"):
        load_pipeline_spec(load_suite(suite))
    suite.write_text(suite.read_text().replace('builtin = "huge-sd"', 'builtin = "tiny-sd"\nentry = "p.py:run"'))
    with pytest.raises(ConfigError, match="exactly one of"):
        load_pipeline_spec(load_suite(suite))


# -- record, judge, refuse ------------------------------------------------------------------------
def test_missing_golden_is_exit_2_with_the_record_command(tmp_path, artifacts, capsys):
    suite = painter(tmp_path)
    code, result = gate(suite, tmp_path / "gate.json")
    assert code == 2 and result["verdict"] == "error"
    assert "'first', 'second'" in result["error"]
    assert f"accuracy baseline record {suite} --force" in result["error"]
    assert "--accuracy-update-baselines" in result["error"]
    assert not (tmp_path / "baselines").exists()  # judging never writes a golden


def test_record_needs_force_then_reports_each_case(tmp_path, artifacts, capsys):
    suite = painter(tmp_path)
    assert main(["baseline", "record", str(suite)]) == 2
    assert "--force" in capsys.readouterr().err
    assert not (tmp_path / "baselines").exists()

    assert main(["baseline", "record", str(suite), "--force"]) == 0
    out = capsys.readouterr().out
    assert "golden/first: recorded a new golden" in out and "golden/second: recorded a new golden" in out
    folder = tmp_path / "baselines" / "painter"
    assert sorted(p.name for p in folder.iterdir()) == [
        "first.json", "first.latents.npy", "first.png", "second.json", "second.latents.npy", "second.png"]
    sidecar = json.loads((folder / "second.json").read_text())
    assert sidecar["provenance"]["seed"] == 1 and sidecar["provenance"]["prompt"] == "a painting"
    assert sidecar["provenance"]["backend"] == "onnxruntime" and sidecar["provenance"]["size"] == [SIDE, SIDE]
    assert sidecar["provenance"]["case"] == "second" and sidecar["provenance"]["suite"] == "painter"

    assert main(["baseline", "record", str(suite), "--force"]) == 0
    assert capsys.readouterr().out.count("golden unchanged") == 2

    painter(tmp_path, second_seed=5)  # the case changed: re-recording replaces it and shows the change
    assert main(["baseline", "record", str(suite), "--force", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "golden/first: golden unchanged" in out and "golden/second: replaced the golden" in out
    picture = artifacts / "painter" / "second.golden-change.png"
    assert f"old | new | difference: {picture}" in out and picture.exists()
    assert json.loads((folder / "second.json").read_text())["provenance"]["seed"] == 5
    assert len(json.loads((tmp_path / "r.json").read_text())["baseline_updated"]) == 2


def test_gate_passes_against_goldens_and_fails_a_broken_candidate(tmp_path, artifacts, capsys):
    suite = painter(tmp_path)
    assert main(["baseline", "record", str(suite), "--force"]) == 0
    code, result = gate(suite, tmp_path / "gate.json")
    assert code == 0 and checks_of(result) == {
        "first/image": True, "first/latents": True, "golden/first": True,
        "second/image": True, "second/latents": True, "golden/second": True}
    golden = next(c for c in result["checks"] if c["name"] == "golden/first")
    assert golden["metrics"]["max_abs"] == 0 and golden["latents"]["passed"]

    before = {p.name: p.read_bytes() for p in (tmp_path / "baselines" / "painter").iterdir()}
    painter(tmp_path, broken=True)
    code, result = gate(suite, tmp_path / "gate.json")
    assert code == 1 and not checks_of(result)["golden/first"] and not checks_of(result)["golden/second"]
    failed = next(c for c in result["checks"] if c["name"] == "golden/first")
    assert "ssim" in failed["message"] and "latents" in failed["message"]
    assert failed["judged_backend"] == "onnxruntime"
    for role in ("expected", "obtained", "diff"):
        assert (artifacts / "painter" / f"first.{role}.png").exists()
    assert str(artifacts / "painter" / "first.diff.png") in failed["message"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "baselines" / "painter").iterdir()} == before


def test_backend_reference_judges_the_reference_run(tmp_path, artifacts, capsys):
    suite = painter(tmp_path, broken=True, golden='backend = "reference"')
    assert main(["baseline", "record", str(suite), "--force"]) == 0
    code, result = gate(suite, tmp_path / "gate.json")
    checks = checks_of(result)
    assert code == 1 and checks["golden/first"] and checks["golden/second"]  # the reference still matches
    assert not checks["first/image"]  # the candidate is still judged against the reference


def test_pytest_update_flag_records_and_agrees_with_gate(tmp_path, artifacts, pytester, capsys):
    suite = painter(pytester.path / "suites" / "painter")
    pytester.runpytest(str(suite)).assert_outcomes(errors=0, failed=1)  # missing goldens: one suite item
    pytester.runpytest(str(suite), "--accuracy-update-baselines").assert_outcomes(passed=6)
    assert (suite.parent / "baselines" / "painter" / "first.png").exists()
    painter(suite.parent, broken=True)
    _, result = gate(suite, tmp_path / "gate.json")
    outcome = pytester.runpytest(str(suite), "-rA")
    checks = checks_of(result)
    outcome.assert_outcomes(passed=sum(checks.values()), failed=len(checks) - sum(checks.values()))
    outcome.stdout.fnmatch_lines(["*FAILED*suite.toml::golden/first*"])


# -- the shipped suite over the tiny Stable Diffusion pipeline -------------------------------------
@pytest.fixture
def tiny_sd_builtin(request, monkeypatch) -> Path:
    """``builtin = "tiny-sd"`` resolved to the session's tiny SD build, whose folder is returned (built
    from scratch in a fresh pytest cache: then these tests show the committed goldens reproduce)."""
    pytest.importorskip("diffusers", reason="the tiny SD pipeline needs the diffusers extra")
    folder = request.getfixturevalue("tiny_sd")
    monkeypatch.setenv("ACCURACY_CACHE_DIR", str(folder.parent))
    return folder


def broken_unet(source: Path, target: Path, *, noise: float = 0.1) -> Path:
    """The unet with every weight perturbed by ``noise`` (relative): a conversion gone wrong."""
    model = onnx.load(str(source))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        weights = numpy_helper.to_array(init)
        if weights.dtype == np.float32 and weights.size > 1:
            noisy = weights * (1 + noise * rng.standard_normal(weights.shape))
            init.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), init.name))
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


def shipped_copy(folder: Path, extra: str = "") -> Path:
    """The shipped suite in ``folder``, reading the committed goldens, with ``extra`` TOML appended."""
    shutil.copytree(SHIPPED.parent, folder)
    suite = folder / "suite.toml"
    text = SHIPPED.read_text().replace('folder = "../../baselines/tiny-sd-img2img"',
                                       f'folder = "{(ROOT / "baselines" / "tiny-sd-img2img").as_posix()}"')
    suite.write_text(text + extra)
    return suite


@pytest.mark.slow
def test_shipped_suite_passes_against_its_goldens(tiny_sd_builtin, tmp_path, artifacts, capsys):
    code, result = gate(SHIPPED, tmp_path / "gate.json")
    assert code == 0, result
    assert checks_of(result) == {"fantasy-landscape/image": True, "golden/fantasy-landscape": True,
                                 "castle-seed7/image": True, "golden/castle-seed7": True}
    golden = next(c for c in result["checks"] if c["name"] == "golden/fantasy-landscape")
    assert golden["metrics"]["psnr"] >= 40 and golden["judged_backend"] == "onnxruntime-fp16"
    assert (artifacts / "tiny-sd-img2img" / "fantasy-landscape.diff.png").exists()


@pytest.mark.slow
def test_shipped_suite_fails_with_a_broken_unet(tiny_sd_builtin, tmp_path, artifacts, capsys):
    unet = broken_unet(tiny_sd_builtin / "unet" / "model.onnx", tmp_path / "broken" / "unet.onnx")
    suite = shipped_copy(tmp_path / "suite", f'\n[candidate.models]\nunet = "{unet.as_posix()}"\n')
    code, result = gate(suite, tmp_path / "gate.json")
    checks = checks_of(result)
    assert code == 1 and not checks["golden/fantasy-landscape"] and not checks["golden/castle-seed7"]
    failed = next(c for c in result["checks"] if c["name"] == "golden/castle-seed7")
    assert failed["metrics"]["psnr"] < 40 and "psnr" in failed["message"]
    for role in ("expected", "obtained", "diff"):
        assert (artifacts / "tiny-sd-img2img" / f"castle-seed7.{role}.png").exists()


@pytest.mark.slow
def test_shipped_suite_missing_goldens_then_record_reports_every_case(tiny_sd_builtin, tmp_path, artifacts, capsys):
    suite = shipped_copy(tmp_path / "suite")
    suite.write_text(suite.read_text().replace(f'"{(ROOT / "baselines" / "tiny-sd-img2img").as_posix()}"',
                                               '"goldens"'))
    code, result = gate(suite, tmp_path / "gate.json")
    assert code == 2 and f"accuracy baseline record {suite} --force" in result["error"]
    assert "'fantasy-landscape', 'castle-seed7'" in result["error"]
    shutil.copytree(ROOT / "baselines" / "tiny-sd-img2img", tmp_path / "suite" / "goldens")
    assert main(["baseline", "record", str(suite)]) == 2
    assert main(["baseline", "record", str(suite), "--force"]) == 0
    out = capsys.readouterr().out
    for case in ("fantasy-landscape", "castle-seed7"):  # "unchanged" where the reference is bit-identical
        assert any(line.strip().startswith(f"golden/{case}: ") and ("unchanged" in line or "replaced" in line)
                   for line in out.splitlines())


@pytest.mark.slow
def test_pytest_on_the_shipped_suite_agrees_with_gate(tiny_sd_builtin, tmp_path, artifacts, pytester, capsys):
    unet = broken_unet(tiny_sd_builtin / "unet" / "model.onnx", tmp_path / "broken" / "unet.onnx")
    suite = shipped_copy(pytester.path / "tiny-sd-img2img", f'\n[candidate.models]\nunet = "{unet.as_posix()}"\n')
    for path in (SHIPPED, suite):
        _, result = gate(path, tmp_path / "gate.json")
        checks = checks_of(result)
        outcome = pytester.runpytest(str(path.parent))  # the folder, as `pytest suites/tiny-sd-img2img`
        outcome.assert_outcomes(passed=sum(checks.values()), failed=len(checks) - sum(checks.values()))
