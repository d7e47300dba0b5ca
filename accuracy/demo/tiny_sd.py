"""A tiny Stable Diffusion v1.5-architecture img2img pipeline, built offline and deterministically.

Same architecture and ONNX layout as the guide's ``runwayml/stable-diffusion-v1-5`` onnx branch
(model_index.json, text_encoder/, unet/, vae_encoder/, vae_decoder/, tokenizer/, scheduler/, each
model exported as diffusers' ``convert_stable_diffusion_checkpoint_to_onnx.py`` does, opset 14), at
the sizes of diffusers' own tests: hidden 32, block_out_channels (32, 64). The CLIP tokenizer's
vocab/merges are written here. The img2img input is a real photograph (scikit-image's ``astronaut``,
resized to 128 px), so that a person can see what each runtime did to it.

HOW THE WEIGHTS ARE SET, so that the fp32 pipeline gives back a recognisable picture (no training):
a near-identity VAE and a UNet whose noise prediction is near zero while it reads the text encoder's
fp32 output (``accuracy.demo.weights`` says how); the text encoder has seeded init and the hazard below.

THE PLANTED HAZARD below.

THE PLANTED HAZARD (``outlier=True``, the demo's default): one MLP channel of the text encoder's first
layer is made to emit a large activation (about 600) into one residual channel, as outlier channels
do in real CLIP and LLM models. fp32 handles it; in fp16 the following LayerNorm squares it
(600^2 = 360000 > 65504, fp16's largest value), the variance overflows to inf and the normalised
hidden states collapse to the LayerNorm's bias -- and the UNet above, reading nothing, ruins the
picture. ``outlier=False`` builds the clean twin with the same seed.

The build is cached under ``cache_dir()`` (``$ACCURACY_CACHE_DIR`` or ``~/.cache/accuracy``), keyed
by ``BUILDER_VERSION``, a hash of this file and the variant, and written atomically (a temp folder renamed into place).
A suite names a variant with ``[pipeline] builtin = "tiny-sd"`` (the demo's, with the outlier) or
``"tiny-sd-clean"``; ``builtin_pipeline`` builds it on first use.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from accuracy.cache import cache_dir
from accuracy.demo import weights
from accuracy.errors import MissingDependencyError

BUILDER_VERSION = 2
SEED = 0
IMAGE_SIZE = 128
PHOTO = "astronaut"  # skimage.data's photograph used as the img2img input
INIT_IMAGE = "inputs/photo.png"  # inside the pipeline folder
OPSET = 14
# The planted outlier: layer 0's MLP, hidden unit 5 writes ~600 into residual channel 7.
OUTLIER_LAYER, OUTLIER_UNIT, OUTLIER_CHANNEL, OUTLIER_VALUE = 0, 5, 7, 600.0
MODELS = ("text_encoder", "unet", "vae_encoder", "vae_decoder")
PROMPT = "A fantasy landscape, trending on artstation"
BUILTINS = {"tiny-sd": True, "tiny-sd-clean": False}  # ``[pipeline] builtin`` name -> outlier


def pipeline_dir(*, outlier: bool = True, root: Path | None = None) -> Path:
    """The cached pipeline's folder (``root`` instead of the user cache, e.g. for tests)."""
    variant = "outlier" if outlier else "clean"
    return (root or cache_dir()) / f"tiny-sd-v{BUILDER_VERSION}-{_builder_digest()}-{variant}"


def _builder_digest() -> str:
    """A short hash of this file and ``weights``: a changed builder never reuses an older one's folder."""
    import hashlib

    digest = hashlib.sha256(Path(__file__).read_bytes() + Path(weights.__file__).read_bytes())
    return digest.hexdigest()[:8]


def builtin_pipeline(name: str, *, progress=None) -> Path:
    """The cached folder of the built-in pipeline ``name`` (a key of ``BUILTINS``), built on first use."""
    return build_tiny_sd(outlier=BUILTINS[name], progress=progress)


def build_tiny_sd(*, outlier: bool = True, force: bool = False, progress=None, root: Path | None = None) -> Path:
    """Build (or reuse) the tiny pipeline folder and return it. ``progress(text)`` gets status lines."""
    target = pipeline_dir(outlier=outlier, root=root)
    if (target / "model_index.json").exists() and not force:
        return target
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "diffusers", "diffusers", "building the tiny Stable Diffusion pipeline") from None
    say = progress or (lambda text: None)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        say(f"building the tiny Stable Diffusion pipeline in {target} (once; cached)")
        _build(work, outlier=outlier, say=say)
        if target.exists() and (force or not (target / "model_index.json").exists()):
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(work, target)
        except OSError:  # another process finished the same build first: theirs is the same, keep it
            if not (target / "model_index.json").exists():
                raise
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def _build(folder: Path, *, outlier: bool, say) -> None:
    import torch

    torch.manual_seed(SEED)
    _write_tokenizer(folder / "tokenizer")
    _write_scheduler(folder / "scheduler")
    text_encoder = _text_encoder(outlier=outlier)
    photo = _write_init_image(folder / INIT_IMAGE)
    vae = weights.identity_vae()
    say("setting the unet to read the text encoder's output (calibrated on the photo's latent)")
    unet = weights.quiet_unet(text_encoder, _prompt_ids(folder / "tokenizer"), weights.photo_latent(vae, photo),
                              sample_size=IMAGE_SIZE // 2, seed=SEED)
    with torch.no_grad():
        say("exporting text_encoder")
        _export(text_encoder, (torch.ones(1, 77, dtype=torch.int32),), folder / "text_encoder" / "model.onnx",
                ["input_ids"], ["last_hidden_state", "pooler_output"], {"input_ids": {0: "batch", 1: "sequence"}})
        say("exporting unet")
        _export(unet, (torch.randn(2, 4, IMAGE_SIZE // 2, IMAGE_SIZE // 2), torch.tensor([1.0]), torch.randn(2, 77, 32), False),
                folder / "unet" / "model.onnx", ["sample", "timestep", "encoder_hidden_states", "return_dict"],
                ["out_sample"], {"sample": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "batch"},
                                 "encoder_hidden_states": {0: "batch", 1: "sequence"}})
        say("exporting vae_encoder (samples with RandomNormalLike, as diffusers' export does)")
        encoder = _wrap(vae, lambda sample, return_dict: vae.encode(sample, return_dict)[0].sample())
        _export(encoder, (torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE), False), folder / "vae_encoder" / "model.onnx",
                ["sample", "return_dict"], ["latent_sample"], {"sample": {0: "batch", 2: "height", 3: "width"}})
        say("exporting vae_decoder")
        decoder = _wrap(vae, lambda latent_sample, return_dict: vae.decode(latent_sample, return_dict))
        _export(decoder, (torch.randn(1, 4, IMAGE_SIZE // 2, IMAGE_SIZE // 2), False), folder / "vae_decoder" / "model.onnx",
                ["latent_sample", "return_dict"], ["sample"], {"latent_sample": {0: "batch", 2: "height", 3: "width"}})
    index = {
        "_class_name": "OnnxStableDiffusionImg2ImgPipeline", "_diffusers_version": "0.42.1",
        "feature_extractor": [None, None], "requires_safety_checker": False, "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["diffusers", "OnnxRuntimeModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "OnnxRuntimeModel"],
        "vae_decoder": ["diffusers", "OnnxRuntimeModel"], "vae_encoder": ["diffusers", "OnnxRuntimeModel"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    (folder / "BUILD.json").write_text(json.dumps({
        "builder_version": BUILDER_VERSION, "seed": SEED, "outlier": outlier, "init_image": INIT_IMAGE,
        "photo": f"skimage.data.{PHOTO}, {IMAGE_SIZE}x{IMAGE_SIZE}",
        "weights": "VAE near-identity; UNet noise prediction ~0 while it reads the text encoder's fp32 output "
                   "(see accuracy/demo/tiny_sd.py)",
        "outlier_site": {"layer": OUTLIER_LAYER, "mlp_unit": OUTLIER_UNIT, "residual_channel": OUTLIER_CHANNEL,
                         "value": OUTLIER_VALUE} if outlier else None,
    }, indent=2))


def _wrap(owner, function):
    """An nn.Module that owns ``owner``'s parameters and calls ``function``, for torch.onnx.export."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.owner = owner

        def forward(self, *args):
            return function(*args)

    return Wrapped().eval()


def _export(module, args, path: Path, input_names, output_names, dynamic_axes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        _export_quiet(module, args, path, input_names, output_names, dynamic_axes)


def _export_quiet(module, args, path: Path, input_names, output_names, dynamic_axes) -> None:
    import torch

    torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                      dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)


def _text_encoder(*, outlier: bool):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=32, intermediate_size=37,
                            layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=5, vocab_size=1000,
                            max_position_embeddings=77)
    config._attn_implementation = "eager"
    model = CLIPTextModel(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():  # LayerNorms that are not exactly identity
            if "layer_norm" in name:
                param.add_(0.1 * torch.randn_like(param))
        if outlier:
            # HERE is the planted large-activation channel (see the module docstring).
            mlp = getattr(model, "text_model", model).encoder.layers[OUTLIER_LAYER].mlp
            mlp.fc1.weight[OUTLIER_UNIT].mul_(0.01)
            mlp.fc1.bias[OUTLIER_UNIT] = OUTLIER_VALUE
            mlp.fc2.weight[:, OUTLIER_UNIT] = 0.0
            mlp.fc2.weight[OUTLIER_CHANNEL, OUTLIER_UNIT] = 1.0
    return model


def _prompt_ids(tokenizer_folder: Path) -> list[int]:
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_folder))
    return tokenizer(PROMPT, padding="max_length", max_length=77).input_ids


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def _write_tokenizer(folder: Path) -> None:
    """CLIP's byte-level BPE with a small vocabulary: every byte (alone and word-final) plus a few merges."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = sorted(set(_bytes_to_unicode().values()))
    vocab: dict[str, int] = {"<|startoftext|>": 0, "!": 1, "<|endoftext|>": 2}
    for symbol in symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(symbol, len(vocab))
    merges = ["a n", "t h", "i n", "e r", "an d</w>", "th e</w>", "in g</w>", "l a", "n d", "s c"]
    for merge in merges:
        vocab.setdefault(merge.replace(" ", ""), len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    tokenizer.save_pretrained(str(folder))


def _write_scheduler(folder: Path) -> None:
    from diffusers import PNDMScheduler

    PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                  steps_offset=1, set_alpha_to_one=False).save_pretrained(str(folder))


def photo_array(size: int = IMAGE_SIZE) -> np.ndarray:
    """scikit-image's bundled photograph, ``size`` x ``size`` RGB uint8 (the img2img input)."""
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(getattr(data, PHOTO)()).resize((size, size), Image.LANCZOS))


def _write_init_image(path: Path) -> np.ndarray:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    photo = photo_array()
    Image.fromarray(photo).save(path)
    return photo
