"""The HTML report: every section kind renders, nothing is fetched from a network, and the page
opens in a real headless chromium with every image loaded."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from accuracy.goldens import check_golden, compare_with_golden, record_golden
from accuracy.report import render_report, write_report
from accuracy.report.html import section_kind
from accuracy.results import CheckResult, SuiteResult
from tests.image_data import landscape, with_noise


def _summary(passed: bool, **metrics) -> dict:
    """The shape of ``accuracy.bisect``'s pipeline-run summaries."""
    return {"verdict": "pass" if passed else "fail", "passed": passed, "failures": [] if passed else ["image: ssim low"],
            "metrics": metrics, "outputs": {"image": metrics}}


BISECT = {
    "suite": "tiny-sd",
    "verdict": "fail",
    "culprits": ["text_encoder"],
    "models": {  # isolated: per-model call statistics; swap_in / leave_out: pipeline-run summaries
        "text_encoder": {"isolated": {"verdict": "non-finite", "calls": 2, "cosine": -1.0, "max_abs": 3.2,
                                      "rel_l2": 1.4, "nonfinite": 96, "failures": ["call 0: 96 non-finite"]},
                         "swap_in": _summary(False, ssim=0.71, psnr=18.2),
                         "leave_out": _summary(True, ssim=0.9995, psnr=44.0)},
        "unet": {"isolated": {"verdict": "pass", "calls": 8, "cosine": 0.99998, "max_abs": 1e-3, "rel_l2": 1e-4,
                              "nonfinite": 0, "failures": []},
                 "swap_in": _summary(True, ssim=0.9999), "leave_out": _summary(False, ssim=0.71)},
    },
    "all_candidate": _summary(False, ssim=0.70, psnr=17.9),
    "noise_floor": _summary(True, ssim=1.0, psnr="inf"),
}
TENSORS = [{"node": f"node_{i}", "op_type": "MatMul" if i % 2 else "Add", "tensor": f"t{i}",
            "metrics": {"cosine": 1 - 10 ** (-7 + 0.25 * i)}, "local": {"cosine": 1 - 10 ** (-7 + 3 * (i == 9))}}
           for i in range(20)]
LOCALIZE = {"verdict": "fail", "first_divergent": {**TENSORS[9]}, "tensors": TENSORS,
            "thresholds": {"cosine_min": 0.9999}}
SCORES = {"verdict": "pass", "checks": [
    {"dataset": "mmlu", "metric": "accuracy", "baseline": 47.0, "candidate": 46.6, "rel_diff": -0.0085, "passed": True,
     "tolerance": {"rel": 0.01, "abs": None, "allow_improvement": False},
     "flipped": {"common": 200, "to_wrong": ["q1", "q2", "q3"], "to_right": ["q4"], "count": 4, "p_value": 0.625}},
    {"dataset": "ceval", "metric": "accuracy", "baseline": 50.0, "candidate": 48.0, "rel_diff": -0.04, "passed": False},
]}


@pytest.fixture
def sections(tmp_path):
    """One of every kind a producer makes, the suite with golden images written as files."""
    image = landscape(48)
    folder = tmp_path / "baselines" / "tiny"
    record_golden(folder, "landscape", image, provenance={"seed": 0})
    record_golden(folder, "sunset", image, provenance={"seed": 1})
    checks = [
        compare_with_golden(folder, "landscape", with_noise(image, 0.5), artifacts_dir=tmp_path / "art"),
        compare_with_golden(folder, "sunset", with_noise(image, 25.0), artifacts_dir=tmp_path / "art"),
        CheckResult("latents <&>", True, "cosine 0.99999", {"cosine": 0.99999, "rel_l2": 1e-4,
                                                            "notes": ["fp16 candidate"]}),
        CheckResult("in memory", True, "", {"images": {"expected": image, "obtained": with_noise(image, 3.0)}}),
    ]
    suite = SuiteResult("tiny <sd>", "pipeline", None, checks).to_dict()
    return [{"kind": "suite", "data": suite}, {"data": BISECT, "title": "bisect"},
            {"data": LOCALIZE, "title": "localize"}, {"data": SCORES, "title": "llm scores"}]


def test_every_section_renders_its_content(sections):
    page = render_report(sections, title="release 1.2 <rc>")
    assert page.startswith("<!DOCTYPE html>") and "release 1.2 &lt;rc&gt;" in page
    assert "tiny &lt;sd&gt;" in page and "latents &lt;&amp;&gt;" in page  # names are escaped
    assert "note: fp16 candidate" in page
    assert page.count("data:image/png;base64,") == 9  # 3 image checks x (expected, obtained, heat map)
    assert "text_encoder <strong>← culprit</strong>" in page and "unet <strong>" not in page
    assert "<strong>non-finite</strong>" in page and page.count('class="bad"') >= 4
    assert page.count("<svg") == 1 and "node_9" in page and page.count("<circle") == 2 * len(TENSORS)
    assert "-0.85 %" in page and "+0.4" not in page and "-0.4" in page and "4 of 200" in page and "±1 %" in page
    assert re.search(r"ssim 0\.99\d+ <span class=\"muted\">\(≥ 0\.98\)", page)


def test_real_localize_output_renders_its_error_curve(hazard_onnx, normalizer_inputs):
    from accuracy.io import jsonable
    from accuracy.localize import localize_model

    result = localize_model(hazard_onnx, normalizer_inputs, "onnxruntime-fp16")
    first = result["first_divergent"]
    assert first is not None
    for data in (result, jsonable(result)):  # in memory (NaN floats) and as read back from --json
        page = render_report([{"kind": "localize", "data": data}])
        assert page.count("<svg") == 1 and page.count("<polyline") >= 1
        assert f"first divergent operator: <strong>{first['node']}</strong>" in page
        assert "introduced" in page


def test_no_network_resources(sections):
    page = render_report(sections)
    for attribute in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert attribute.startswith(("data:", "#")), attribute
    text = page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a namespace name, never fetched
    assert "http://" not in text and "https://" not in text and "//" not in re.sub(r"data:[^\"]*", "", text)
    assert "default-src 'none'" in page


def test_kinds_are_inferred_from_the_data():
    assert section_kind({"data": BISECT}) == "bisect"
    assert section_kind(LOCALIZE) == "localize"
    assert section_kind(SCORES) == "scores"
    assert section_kind({"suite": "s", "checks": []}) == "suite"
    bare_score_suite = {"suite": "guide", "kind": "scores", "verdict": "pass", "checks": SCORES["checks"]}
    assert section_kind(bare_score_suite) == "suite"  # its own "kind" is the suite's kind, not the section's
    page = render_report([bare_score_suite])
    assert "kind <code>scores</code>" in page and "-0.85 %" in page
    assert section_kind({"kind": "scores", "data": SCORES}) == "scores"
    with pytest.raises(ValueError, match="pass 'kind'"):
        section_kind({"something": 1})
    with pytest.raises(ValueError, match="unknown report section kind"):
        render_report([{"kind": "poem", "data": {}}])


def test_a_change_picture_alone_is_shown_readable(tmp_path):
    folder = tmp_path / "baselines" / "s"
    record_golden(folder, "c", landscape(64), provenance={})
    check = check_golden(folder, "c", with_noise(landscape(64), 30.0), provenance={}, update=True,
                         artifacts_dir=tmp_path / "art")
    page = render_report([{"data": SuiteResult("s", "pipeline", None, [check]).to_dict()}])
    widths = [int(w) for w in re.findall(r'<img [^>]*width="(\d+)"', page)]
    assert len(widths) == 1 and widths[0] > 400  # the old | new | difference picture, not a 192 px stamp


def test_a_missing_picture_is_a_note_not_a_crash(tmp_path):
    check = CheckResult("c", False, "gone", {"images": {"expected": str(tmp_path / "gone.png")}})
    page = render_report([{"data": SuiteResult("s", "pipeline", None, [check]).to_dict()}])
    assert "picture unavailable" in page and "gone.png" in page


def test_write_report_is_atomic_and_utf8(tmp_path, sections):
    path = write_report(tmp_path / "out" / "report.html", sections, title="naïve ✓")
    assert "naïve ✓" in path.read_text(encoding="utf-8")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  var probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = "images=" + images.length + " loaded=" + loaded.length +
      " svgs=" + document.querySelectorAll("svg").length + " sections=" + document.querySelectorAll("section").length;
  document.body.appendChild(probe);
});
</script>"""


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_report_opens_in_headless_chromium_with_every_image_loaded(tmp_path, sections):
    page = render_report(sections)
    # The probe script needs the page's CSP to allow inline script; image loading rules stay as shipped.
    probed = page.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
    probed = probed.replace("</body>", PROBE + "</body>", 1)
    html_path = tmp_path / "report.html"
    html_path.write_text(probed, encoding="utf-8")
    command = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", html_path.as_uri(),
    ]
    process = subprocess.run(command, check=False, capture_output=True, text=True, timeout=180)
    assert process.returncode == 0, process.stderr[-2000:]
    match = re.search(r'<pre id="probe">images=(\d+) loaded=(\d+) svgs=(\d+) sections=(\d+)</pre>', process.stdout)
    assert match, process.stdout[-2000:]
    images, loaded, svgs, rendered_sections = map(int, match.groups())
    assert images == page.count("<img ") == 9
    assert loaded == images
    assert svgs == 1 and rendered_sections == len(sections)


DEMO_PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  var probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = "loaded=" + images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length +
      "/" + images.length + " width=" + document.querySelector('figure[data-role="reference"] img').width;
  document.body.appendChild(probe);
});
</script>"""


@pytest.fixture(scope="module")
def demo_report(tiny_sd, tmp_path_factory):
    """The demo's report on the tiny SD pipeline (with localize and the verified keep-fp32 repair)."""
    pytest.importorskip("diffusers", reason="the tiny SD pipeline needs the diffusers extra")
    from accuracy.cli.demo import write_demo_report
    from accuracy.demo.story import run_demo

    folder = tmp_path_factory.mktemp("demo-report")
    result, _ = run_demo(progress=lambda text: None, folder=tiny_sd, pictures_dir=folder / "pictures")
    return result, Path(write_demo_report(folder / "report.html", result))


def _figure_image(dom: str, role: str):
    """The picture the browser shows for ``<figure data-role=ROLE>``, decoded from the rendered DOM."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    match = re.search(rf'<figure data-role="{role}"><img src="data:image/png;base64,([^"]+)"', dom)
    assert match, role
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(match.group(1)))).convert("RGB"))


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_demo_report_in_chromium_shows_the_fix_and_a_recognisable_photo(demo_report, tmp_path):
    """What a person sees: the fix to copy, and the fp32 picture that is recognisably the input photo
    (SSIM against it, as displayed) while the fp16 one is clearly not."""
    from skimage.metrics import structural_similarity

    result, report = demo_report
    page = report.read_text(encoding="utf-8")
    probed = page.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
    probed = probed.replace("</body>", DEMO_PROBE + "</body>", 1)
    html_path = tmp_path / "report.html"
    html_path.write_text(probed, encoding="utf-8")
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", html_path.as_uri()]
    process = subprocess.run(command, check=False, capture_output=True, text=True, timeout=180)
    assert process.returncode == 0, process.stderr[-2000:]
    dom = process.stdout
    loaded, total, width = map(int, re.search(r'<pre id="probe">loaded=(\d+)/(\d+) width=(\d+)</pre>', dom).groups())
    assert loaded == total > 4 and width >= 256  # every picture loads; the pictures are big enough to see
    assert dom.count("<h1>") == 1
    text = re.sub(r"<[^>]+>", " ", dom)
    repair = result["models"]["text_encoder"]["localize"]["repair"]
    for needle in (f"KEEP IN FP32: {repair['keep_fp32'][0]}", "[candidate.keep_fp32]", "precision_mode=enforce_fp32",
                   "65504", "accuracy bisect my-pipeline.toml --localize --suggest-fp32"):
        assert needle in text, needle
    photo, reference, candidate = (_figure_image(dom, role) for role in ("input", "reference", "candidate"))
    same = structural_similarity(photo, reference, channel_axis=2)
    damaged = structural_similarity(photo, candidate, channel_axis=2)
    assert same > 0.6 and damaged < same - 0.1, (same, damaged)  # (at 256 px: the blocky 2x copy of 128 px)
    screenshot = tmp_path / "report.png"
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'p2'}",
                    "--window-size=1280,1600", f"--screenshot={screenshot}", report.as_uri()],
                   check=False, capture_output=True, timeout=180)
    assert screenshot.exists() and screenshot.stat().st_size > 10_000
