"""``accuracy demo``: the guide's whole story on the bundled tiny Stable Diffusion img2img pipeline.

Build (or reuse) the pipeline, bisect ONNX Runtime fp32 against the fp16 emulation, then tell it:
which model moves the image, how far, why (the planted outlier channel, confirmed by ``localize``
when available), and the guide's fix (that one model in fp32).
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
image = "{folder}/inputs/sketch.png"
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


def run_demo(*, progress: Say, rebuild: bool = False, localize: bool = True,
             folder: Path | None = None, pictures_dir: Path | None = None) -> tuple[dict[str, Any], str]:
    """Run the demo; returns (bisect JSON, the story text). ``progress`` gets status lines.
    ``folder`` is an already built pipeline (tests); by default it is built or reused from the cache.

    Localizing the culprit is ``bisect --localize``'s own code path (``accuracy.bisect.localize``):
    the culprit's first recorded call (the prompt's tokens for text_encoder) is its input. The
    culprit's whole localize JSON is also kept under ``result["localize"]`` for the report."""
    from accuracy.bisect.bisector import bisect_pipeline
    from accuracy.bisect.localize import LocalizeRequest
    from accuracy.config import load_suite
    from accuracy.config.pipeline import load_pipeline_spec

    if folder is None:
        folder = tiny_sd.build_tiny_sd(outlier=True, force=rebuild, progress=progress)
    progress(f"pipeline: {folder}")
    spec = load_pipeline_spec(load_suite(write_demo_suite(folder)))
    request = LocalizeRequest(suggest_fp32=True) if localize else None
    result = bisect_pipeline(spec, progress=progress, localize=request, pictures_dir=pictures_dir)
    why = request.full.get(result["culprits"][0]) if request and result["culprits"] else None
    if why is not None:
        result["localize"] = why
    return result, tell_story(result, why=why, folder=folder)


def tell_story(result: Mapping[str, Any], *, why: Mapping[str, Any] | None = None, folder: Path | None = None) -> str:
    """The demo's text for people: which model, how far, why, and what fixes it."""
    lines = _setting(result)
    culprits = result["culprits"]
    lines += _which_and_how_far(result, culprits[0]) if culprits else [
        "2. No single model fails on its own"
        + (f"; smallest failing combination: {', '.join(result['smallest_failing'])}."
           if result.get("smallest_failing") else ".")]
    if "text_encoder" in culprits:
        lines += _why() + _localize_lines(why) + _fix(culprits[0]) + _repair_lines(result, culprits[0])
    return "\n".join(lines)


def _setting(result: Mapping[str, Any]) -> list[str]:
    everything = result["all_candidate"]["metrics"]
    noise = result["noise_floor"]["metrics"]
    return [
        "The guide's method on a tiny Stable Diffusion v1.5-architecture img2img pipeline",
        "(text_encoder, unet, vae_encoder, vae_decoder; ONNX, built offline with seeded weights).",
        (f"Reference: {result['reference_backend']} (fp32).  Candidate: {result['candidate_backend']} "
         "(a converter's default fp16 precision, emulated on the CPU)."),
        "",
        (f"1. All models in fp16: the image check says {result['all_candidate']['verdict'].upper()} "
         f"(PSNR {_f(everything.get('psnr'))} dB, SSIM {_f(everything.get('ssim'), 4)}; "
         "the suite needs >= 40 dB, >= 0.995)."),
        (f"   Reference against itself: PSNR {_f(noise.get('psnr'))} dB -- no noise to blame "
         "(vae_encoder's RandomNormalLike runs from a seeded private copy)."),
    ]


def _which_and_how_far(result: Mapping[str, Any], name: str) -> list[str]:
    models = result["models"]
    view = models[name]
    others = [m for m in models if m != name]
    lines = [
        (f"2. One model at a time in fp16 (the rest fp32): only {name} fails "
         f"(PSNR {_f(view['swap_in']['metrics'].get('psnr'))} dB); "
         + ", ".join(f"{m} {_f(models[m]['swap_in']['metrics'].get('psnr'))} dB" for m in others) + "."),
        (f"   CULPRIT: {name}.  Its own output, fed the recorded fp32 inputs, has cosine "
         f"{_f(view['isolated']['cosine'], 4)} against fp32 (the others: "
         + ", ".join(_f(models[m]["isolated"]["cosine"], 6) for m in others) + ")."),
        (f"   Everything in fp16 except {name}: PSNR {_f(view['leave_out']['metrics'].get('psnr'))} dB, "
         f"{view['leave_out']['verdict']}."),
    ]
    for gear in view["isolated"].get("gears", []):
        lines.append(f"   gear {gear['gear']} (its converter config): {gear['verdict']}, cosine {_f(gear['cosine'], 4)}")
    return lines


def _why() -> list[str]:
    value = tiny_sd.OUTLIER_VALUE
    return [
        "",
        "3. Why: this demo pipeline was built with ONE PLANTED large-activation channel in the text encoder's",
        (f"   MLP (layer {tiny_sd.OUTLIER_LAYER}, unit {tiny_sd.OUTLIER_UNIT} writes ~{value:.0f} "
         f"into residual channel {tiny_sd.OUTLIER_CHANNEL}), as outlier channels do in real CLIP and LLMs."),
        (f"   fp32 carries it; in fp16 the next LayerNorm squares it ({value:.0f}^2 = {value * value:.0f} > 65504, "
         "fp16's maximum),"),
        "   the variance overflows to inf and the normalised hidden states collapse.",
    ]


def _fix(name: str) -> list[str]:
    return [
        ("4. Fix (the guide's): convert only this model with precision_mode=enforce_fp32 "
         "([ascend_context] in its converter .ini);"),
        (f"   the 'everything in fp16 except {name}' run above is that configuration. "
         "fp32 everywhere costs speed, so keep it where the error enters."),
    ]


def _repair_lines(result: Mapping[str, Any], name: str) -> list[str]:
    """The keep-fp32 list that ``bisect --suggest-fp32`` found and verified with the whole pipeline."""
    repair = (result["models"][name].get("localize") or {}).get("repair")
    if not repair:
        return []
    if not (repair["passed"] and repair["keep_fp32"]):
        return [f"   Keeping single operators in fp32 was not enough: {repair.get('note') or 'no list passed'}."]
    kept = ", ".join(f"{n} ({repair['op_types'].get(n, '?')})" for n in repair["keep_fp32"])
    metrics = (repair.get("pipeline") or {}).get("metrics", {})
    introduced = (result["models"][name]["localize"].get("tensors") or {}).get("introduced", 0)
    lines = [
        f"   Cheaper (bisect --suggest-fp32): keep only {kept} of {name} in fp32 and the whole pipeline passes",
        (f"   (PSNR {_f(metrics.get('psnr'))} dB, SSIM {_f(metrics.get('ssim'), 4)}; verified by running it, "
         f"{repair['pipeline_runs']} pipeline run(s) searched) -- the operator keep-list for a mixed-precision conversion."),
    ]
    if introduced > len(repair["keep_fp32"]):
        lines.append(f"   localize saw {introduced} operators introduce error; the pipeline's image check, not the "
                     "model's own output, decides which of them must stay in fp32.")
    return lines


def _localize_lines(why: Mapping[str, Any] | None) -> list[str]:
    """What ``localize`` found inside the culprit: the first LayerNorm square that overflows, and its
    earliest flag when that is something else (the attention mask's float32 minimum becoming -inf)."""
    if not why:
        return []
    introduced = [t for t in why.get("tensors", []) if t.get("status") == "introduced"]
    norm = next((t for t in introduced if t.get("op_type") == "Pow" or "layer_norm" in str(t.get("node"))), None)
    lines = []
    if norm:
        overflowed = (norm.get("local") or {}).get("nonfinite_obtained")
        lines.append(f"   localize confirms it inside text_encoder: {norm['node']} ({norm['op_type']}) introduces "
                     f"{overflowed} non-finite values (one per token) -- the LayerNorm right after the planted channel.")
    first = why.get("first_divergent")
    if first and (not norm or first.get("node") != norm.get("node")):
        lines.append(f"   (localize's earliest flag, {first.get('node')} ({first.get('op_type')}), is the attention "
                     "mask's float32 minimum becoming -inf in fp16, which softmax absorbs.)"
                     if first.get("op_type") in ("Constant", "Where") else
                     f"   (localize's earliest flag: {first.get('node')} ({first.get('op_type')}).)")
    return lines


def _f(value: Any, digits: int = 1) -> str:
    if isinstance(value, (int, float)):
        if value == float("inf"):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)
