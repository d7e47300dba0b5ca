"""``accuracy demo``: the guide's whole story on the bundled tiny Stable Diffusion img2img pipeline.

Build (or reuse) the pipeline, bisect ONNX Runtime fp32 against the fp16 emulation, then tell it:
how the pipeline was built, which model moves the image and how far, which operator (``localize``)
and why (the planted outlier channel), the verified fix (a keep-fp32 list and the converter
snippet), and the command to run next on one's own pipeline. The story is a list of steps
(``story_steps``) that the terminal prints and the HTML report shows, so both tell the same thing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from accuracy.demo import tiny_sd

Say = Callable[[str], None]

SUITE_TEMPLATE = """\
# Written by `accuracy demo`: the tiny Stable Diffusion img2img pipeline, fp32 against fp16.
[suite]
name = "tiny-sd-img2img-fp16"

[pipeline]
diffusers = "{folder}"

[pipeline.inputs]
prompt = "{prompt}"
image = "{folder}/inputs/photo.png"
strength = 0.75
guidance_scale = 7.5
num_inference_steps = 4
seed = 0

[reference]
backend = "onnxruntime"

[candidate]
backend = "onnxruntime-fp16"

[compare]
# fp16 rounding alone keeps this pipeline's image above 60 dB; 40 dB / 0.995 leave room for it.
psnr_min = 40.0
ssim_min = 0.995

[converter]
text_encoder = "{folder}/configs/text_encoder.ini"
"""

CONVERTER_INI = """\
# text_encoder.ini, as in the guide's dynamic-gear conversion
[acl_build_options]
input_format="ND"
input_shape="input_ids:1,-1"
ge.dynamicDims="77;33"
"""


def write_demo_suite(folder: Path) -> Path:
    """The demo's suite file (and its converter config) inside the pipeline folder."""
    (folder / "configs").mkdir(exist_ok=True)
    (folder / "configs" / "text_encoder.ini").write_text(CONVERTER_INI, encoding="utf-8")
    suite = folder / "demo-suite.toml"
    suite.write_text(SUITE_TEMPLATE.format(folder=folder.as_posix(), prompt=tiny_sd.PROMPT), encoding="utf-8")
    return suite


def run_demo(*, progress: Say, rebuild: bool = False, localize: bool = True, folder: Path | None = None,
             pictures_dir: Path | None = None, localize_dir: Path | None = None) -> tuple[dict[str, Any], str]:
    """Run the demo; returns (bisect JSON, the story text). ``progress`` gets status lines.
    ``folder`` is an already built pipeline (tests); by default it is built or reused from the cache.

    Localizing the culprit is ``bisect --localize``'s own code path (``accuracy.bisect.localize``):
    the culprit's first recorded call (the prompt's tokens for text_encoder) is its input. The
    culprit's whole localize JSON is also kept under ``result["localize"]``, the story's steps under
    ``result["story"]`` and the input photo and suite under ``result["demo"]``, for the report."""
    from accuracy.bisect.bisector import bisect_pipeline
    from accuracy.bisect.localize import LocalizeRequest
    from accuracy.config import load_suite
    from accuracy.config.pipeline import load_pipeline_spec

    if folder is None:
        folder = tiny_sd.build_tiny_sd(outlier=True, force=rebuild, progress=progress)
    progress(f"pipeline: {folder}")
    suite = write_demo_suite(folder)
    spec = load_pipeline_spec(load_suite(suite))
    request = LocalizeRequest(suggest_fp32=True, out_dir=localize_dir) if localize else None
    result = bisect_pipeline(spec, progress=progress, localize=request, pictures_dir=pictures_dir)
    why = request.full.get(result["culprits"][0]) if request and result["culprits"] else None
    if why is not None:
        result["localize"] = why
    result["demo"] = {"photo": str(folder / tiny_sd.INIT_IMAGE), "suite": str(suite), "pipeline": str(folder)}
    steps = story_steps(result, why=why, suite=suite)
    result["story"] = steps
    return result, render_story(steps)


def render_story(steps: list[dict[str, Any]]) -> str:
    """The steps as terminal text: a numbered heading, its lines, its code indented."""
    out: list[str] = []
    for number, step in enumerate(steps):
        out.append(f"{number}. {step['title']}" if number else step["title"])
        out += [f"   {line}" for line in step["lines"]]
        if step.get("code"):
            out += [f"      {line}" if line else "" for line in step["code"].rstrip().splitlines()]
        out.append("")
    return "\n".join(out).rstrip()


def tell_story(result: Mapping[str, Any], *, why: Mapping[str, Any] | None = None, folder: Path | None = None) -> str:
    """The demo's text for people (``render_story(story_steps(...))``)."""
    suite = folder / "demo-suite.toml" if folder is not None else None
    return render_story(story_steps(result, why=why, suite=suite))


def story_steps(result: Mapping[str, Any], *, why: Mapping[str, Any] | None = None,
                suite: Path | None = None) -> list[dict[str, Any]]:
    """Each step: ``{"title", "lines": [...], "code": text or None}``; JSON-able, for terminal and report."""
    culprits = result["culprits"]
    steps = [_built(), _all_fp16(result)]
    if not culprits:
        steps.append(_step("One model at a time in fp16", [
            "No single model fails on its own"
            + (f"; the smallest failing combination: {', '.join(result['smallest_failing'])}."
               if result.get("smallest_failing") else ".")]))
        return steps + [_next(suite)]
    name = culprits[0]
    steps.append(_which_and_how_far(result, name))
    if name == "text_encoder":
        steps.append(_why(why))
    steps += _fix(result, name)
    return steps + [_next(suite)]


def _step(title: str, lines: list[str], code: str | None = None) -> dict[str, Any]:
    return {"title": title, "lines": lines, "code": code}


def _built() -> dict[str, Any]:
    return _step("How this demo pipeline was built (offline, no training, seeded)", [
        (f"A Stable Diffusion v1.5-architecture img2img pipeline at toy size (text_encoder, unet, vae_encoder, "
         f"vae_decoder; ONNX, run by diffusers' OnnxStableDiffusionImg2ImgPipeline). Its input is a real photograph, "
         f"scikit-image's '{tiny_sd.PHOTO}' at {tiny_sd.IMAGE_SIZE} px."),
        ("The VAE's weights are set to a near-identity mapping and the UNet's noise prediction is near zero "
         "while it reads the text encoder's output as fp32 gives it, so the fp32 pipeline gives the photo back, "
         "slightly softened (half-resolution latents)."),
        (f"One hazard is planted: the text encoder's first MLP writes ~{tiny_sd.OUTLIER_VALUE:.0f} into one residual "
         "channel, as outlier channels do in real CLIP and LLMs (see accuracy/demo/tiny_sd.py)."),
    ])


def _all_fp16(result: Mapping[str, Any]) -> dict[str, Any]:
    everything = result["all_candidate"]["metrics"]
    noise = result["noise_floor"]["metrics"]
    return _step("Every model in fp16 against fp32", [
        (f"Reference: {result['reference_backend']} (fp32). Candidate: {result['candidate_backend']} "
         "(a converter's default fp16 precision, emulated on the CPU)."),
        (f"The image check says {result['all_candidate']['verdict'].upper()}: PSNR {_f(everything.get('psnr'))} dB, "
         f"SSIM {_f(everything.get('ssim'), 4)} against the fp32 image (the suite needs >= 40 dB and >= 0.995)."),
        (f"The reference against itself: PSNR {_f(noise.get('psnr'))} dB, so the difference is not noise "
         "(vae_encoder's RandomNormalLike runs from a seeded private copy)."),
    ])


def _which_and_how_far(result: Mapping[str, Any], name: str) -> dict[str, Any]:
    models = result["models"]
    view = models[name]
    others = [m for m in models if m != name]
    lines = [
        (f"Only {name} makes the image fail when it alone runs in fp16 (swap_in: PSNR "
         f"{_f(view['swap_in']['metrics'].get('psnr'))} dB); the others alone: "
         + ", ".join(f"{m} {_f(models[m]['swap_in']['metrics'].get('psnr'))} dB" for m in others) + "."),
        (f"CULPRIT: {name}. Fed the recorded fp32 inputs, its own output has cosine "
         f"{_f(view['isolated']['cosine'], 4)} against fp32 (the others: "
         + ", ".join(f"{m} {_f(models[m]['isolated']['cosine'], 4)}" for m in others) + ")."),
        (f"Everything in fp16 except {name} (leave_out): PSNR {_f(view['leave_out']['metrics'].get('psnr'))} dB, "
         f"{view['leave_out']['verdict']}."),
    ]
    unet = models.get("unet", {}).get("isolated", {})
    if unet.get("verdict") == "fail" and models.get("unet", {}).get("swap_in", {}).get("passed"):
        lines.append("(unet's own output fails alone but the image does not move: its fp32 noise prediction is near "
                     "zero by construction, so fp16 rounding is large beside it and harmless to the picture.)")
    gears = view["isolated"].get("gears", [])
    if gears:
        lines.append(f"{name}'s converter config (the guide's text_encoder.ini) builds it for "
                     f"{len(gears)} input shapes, 'gears' (ge.dynamicDims); each gear is checked on its own, "
                     "fp16 against fp32 at that shape:")
        lines += [f"  gear {g['gear']}: {g['verdict']}, cosine {_f(g.get('cosine'), 4)}" for g in gears]
        if all(g["verdict"] != "pass" for g in gears):
            lines.append("  every gear fails: the fault is in the model, not in one shape.")
    return _step(f"Which model: one at a time in fp16 -> {name}", lines)


def _why(why: Mapping[str, Any] | None) -> dict[str, Any]:
    value = tiny_sd.OUTLIER_VALUE
    lines = [
        (f"The planted channel carries ~{value:.0f} (layer {tiny_sd.OUTLIER_LAYER}'s MLP unit {tiny_sd.OUTLIER_UNIT} "
         f"into residual channel {tiny_sd.OUTLIER_CHANNEL}). fp32 carries it; in fp16 every LayerNorm that reads "
         f"the residual squares it: {value:.0f}^2 = {value * value:.0f} > 65504, fp16's largest value."),
        "The variance overflows to inf and the normalised hidden states collapse to the LayerNorm's bias.",
    ]
    introduced = [t for t in (why or {}).get("tensors", []) if t.get("status") == "introduced"]
    first = (why or {}).get("first_divergent")
    if first:
        count = ((first.get("metrics") or {}).get("nonfinite_obtained"))
        lines.append(f"localize: the error ENTERS at {first['node']} ({first['op_type']})"
                     + (f", {count} non-finite values (one per token)" if count else "")
                     + f"; {len(introduced)} operator(s) introduce error of their own, every other diverging "
                       "tensor only inherits it.")
    return _step("Which operator, and why", lines)


def _fix(result: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    steps = []
    found = result["models"][name].get("localize") or {}
    repair = found.get("repair")
    first = found.get("first_divergent") or {}
    whole = _step("The fix: the guide's, this model in fp32", [
        (f"Convert {name} with precision_mode=enforce_fp32 ([ascend_context] in its converter .ini); the "
         f"'everything in fp16 except {name}' run above is that configuration, and it passes."),
        "fp32 costs speed, so keep in fp32 only what must be:"])
    steps.append(whole)
    if not repair:
        return steps
    if not (repair.get("passed") and repair.get("keep_fp32")):
        whole["lines"].append(f"keeping single operators in fp32 was not enough: {repair.get('note') or 'no list passed'}.")
        return steps
    kept = repair["keep_fp32"]
    metrics = (repair.get("pipeline") or {}).get("metrics", {})
    total = (result.get("repair") or {})
    named = ", ".join(f"{n} ({repair['op_types'].get(n, '?')})" for n in kept)
    lines = [
        f"KEEP IN FP32: {named} -- the rest of {name} stays fp16.",
        (f"Verified by running the whole pipeline: PSNR {_f(metrics.get('psnr'))} dB, SSIM {_f(metrics.get('ssim'), 4)} "
         f"({repair.get('pipeline_runs', '?')} pipeline run(s) searched)"
         + (f"; all models together: {total.get('configuration')}, {'pass' if total.get('passed') else 'fail'}."
            if total else ".")),
    ]
    if first.get("node") and first["node"] not in kept:
        lines.append(
            f"Why not {first['node']}, where the error enters? Every LayerNorm that reads the residual overflows the "
            "same way, but the early ones only spoil what their layer adds to the residual stream (a change the image "
            f"check tolerates); {kept[-1]} normalises the stream itself into {name}'s output, so its overflow erases "
            "everything. localize finds where error enters; the pipeline's check decides what must stay fp32.")
    files = repair.get("files") or {}
    if files:
        lines += [f"{kind}: {path}" for kind, path in files.items()]
    steps.append(_step("The cheaper fix, verified: keep a few operators in fp32", lines,
                       code=(total.get("suite_table") or "") + "\n" + (repair.get("snippets") or "")))
    return steps


def _next(suite: Path | None) -> dict[str, Any]:
    lines = [
        ("On your own pipeline: write a suite file naming your models and inputs (docs/pipeline-suites.md; a "
         "diffusers ONNX folder needs no code) and run"),
        "  accuracy bisect my-pipeline.toml --localize --suggest-fp32 --report report.html",
    ]
    if suite is not None:
        lines.append(f"This demo's own suite, to repeat or edit it: {suite}")
    return _step("Next: your pipeline", lines)


def _f(value: Any, digits: int = 1) -> str:
    if isinstance(value, (int, float)):
        if value == float("inf"):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)
