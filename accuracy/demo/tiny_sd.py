"""A tiny Stable Diffusion v1.5-architecture img2img pipeline, built offline and deterministically.

Same architecture and ONNX layout as the guide's ``runwayml/stable-diffusion-v1-5`` onnx branch
(model_index.json, text_encoder/, unet/, vae_encoder/, vae_decoder/, tokenizer/, scheduler/, each
model exported as diffusers' ``convert_stable_diffusion_checkpoint_to_onnx.py`` does, opset 14), at
the sizes of diffusers' own tests: hidden 32, block_out_channels (32, 64). The CLIP tokenizer's
vocab/merges are written here. The img2img input is a real photograph (scikit-image's ``astronaut``,
resized to 128 px), so that a person can see what each runtime did to it.

HOW THE WEIGHTS ARE SET, so that the fp32 pipeline gives back a recognisable picture (no training):

- VAE: a near-identity mapping. Each colour channel x travels with -x and the constants +K, -K in
  one GroupNorm group, so the group's mean is 0 and its spread is ~K/sqrt(2) whatever the picture;
  SiLU(y) - SiLU(-y) = y undoes the activation; the resnets, attention and downsampler are
  identities or a 2x2 average, the upsampler is close to bilinear. The encoder's latent is the
  picture at half resolution times a large gain (``LATENT_GAIN``), so img2img's added noise is small
  beside it, and its log-variance is -30 (a deterministic latent).
- UNet: its noise prediction is near zero while it reads the text encoder's output as fp32 gives it.
  Its resnets, self-attention and feed-forward layers are identities and its input convolution is
  tiny, so the noisy latent's content stays small. Every cross-attention reads the text's tokens
  (evenly) along one direction, orthogonal to the final LayerNorm's bias, and adds what it reads as a
  large constant shift; the last resnet puts that shift, +/-, into both channels of every output
  GroupNorm pair, so each pair reads exactly (+1, -1) and conv_out's weights are set to cancel it.
  Without the shift (embeddings that collapsed to the final LayerNorm's bias read exactly 0 along
  that direction) the GroupNorm amplifies the noisy latent instead: a large, wrong noise prediction.
- text encoder: seeded init, with THE PLANTED HAZARD below.

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
from accuracy.errors import MissingDependencyError

BUILDER_VERSION = 2
SEED = 0
IMAGE_SIZE = 128
PHOTO = "astronaut"  # skimage.data's photograph used as the img2img input
INIT_IMAGE = "inputs/photo.png"  # inside the pipeline folder
OPSET = 14
# The planted outlier: layer 0's MLP, hidden unit 5 writes ~600 into residual channel 7.
OUTLIER_LAYER, OUTLIER_UNIT, OUTLIER_CHANNEL, OUTLIER_VALUE = 0, 5, 7, 600.0
LATENT_GAIN = 2000.0  # VAE encoder: latent = gain x picture, so img2img's unit-variance noise is small beside it
PAIR_CONSTANT = 4.0  # the +K / -K channels that fix each VAE GroupNorm group's spread
UNET_CONTENT_GAIN = 1e-4  # unet conv_in: the latent's content, small beside the text's shift
UNET_SHIFT_GAIN = 300.0  # cross-attention output gain: the shift that reading the text causes
OUTPUT_PAIR_GAIN = 20.0  # the text's shift into each output GroupNorm pair, +/- (see _saturate_output_pairs)
TEXT_READING = 5.5  # what the cross-attention values read from the fp32 embeddings (their tokens' mean)
UNET_EPS_GAIN = 3000.0  # conv_out gain: how large the noise prediction is when that shift is missing
START_TOKEN_SHARPNESS = 100.0
CALIBRATION_STEPS = ((751.0, 0.0557), (501.0, 0.2750), (251.0, 0.6722))  # img2img's (t, cumulative alpha)
MODELS = ("text_encoder", "unet", "vae_encoder", "vae_decoder")
PROMPT = "A fantasy landscape, trending on artstation"
BUILTINS = {"tiny-sd": True, "tiny-sd-clean": False}  # ``[pipeline] builtin`` name -> outlier


def pipeline_dir(*, outlier: bool = True, root: Path | None = None) -> Path:
    """The cached pipeline's folder (``root`` instead of the user cache, e.g. for tests)."""
    variant = "outlier" if outlier else "clean"
    return (root or cache_dir()) / f"tiny-sd-v{BUILDER_VERSION}-{_builder_digest()}-{variant}"


def _builder_digest() -> str:
    """A short hash of this file: a changed builder never reuses a folder an older one built."""
    import hashlib

    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8]


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
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
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
    vae = _vae()
    say("setting the unet to read the text encoder's output (calibrated on the photo's latent)")
    unet = _unet(text_encoder, _prompt_ids(folder / "tokenizer"), _latent(vae, photo))
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


def _unet(text_encoder, prompt_ids: list[int], latent):
    """The UNet of the module docstring: near-zero noise prediction while it reads the fp32 text."""
    import torch
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=IMAGE_SIZE // 2, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=16,
    ).eval()
    with torch.no_grad():
        hidden = text_encoder(torch.tensor([prompt_ids]))[0]
        start = hidden[0, 0]  # the start token's embedding (the same for every prompt): the direction read
        bias = getattr(text_encoder, "text_model", text_encoder).final_layer_norm.bias
        direction = start - (start @ bias) / (bias @ bias) * bias  # reads 0 on collapsed embeddings (= bias)
        direction = direction / direction.norm()
        direction = direction * (TEXT_READING / (hidden[0] @ direction).mean())  # the tokens' mean reads TEXT_READING
        unet.conv_in.weight.mul_(UNET_CONTENT_GAIN)
        unet.conv_in.bias.mul_(UNET_CONTENT_GAIN)
        for name, module in unet.named_modules():
            _quiet_unet_module(name, module, direction)
        unet.conv_out.weight.mul_(UNET_EPS_GAIN)
        unet.conv_out.bias.mul_(UNET_EPS_GAIN)
        # calibrate: with the text read, the prediction is a constant that conv_out cancels
        generator = torch.Generator().manual_seed(SEED)
        noise = torch.randn(latent.shape, generator=generator)
        samples = [((alpha ** 0.5) * latent + (1 - alpha) ** 0.5 * noise, step) for step, alpha in CALIBRATION_STEPS]
        _saturate_output_pairs(unet, samples[0], hidden)
        normalised = []
        hook = unet.conv_norm_out.register_forward_hook(lambda module, args, output: normalised.append(output))
        try:
            unet(samples[0][0].repeat(2, 1, 1, 1), torch.tensor([samples[0][1]]), hidden.repeat(2, 1, 1))
        finally:
            hook.remove()
        # each GroupNorm pair reads (+1, -1) or (-1, +1): weigh the pair so its two terms cancel exactly,
        # no large constant left for fp16 to round (the candidate's pairs read the picture, and do not)
        signs = normalised[0].mean(dim=(0, 2, 3))
        act = torch.nn.functional.silu(signs)
        weight = unet.conv_out.weight
        for first in range(0, weight.shape[1], 2):
            weight[:, first + 1] = -weight[:, first] * act[first] / act[first + 1]
        unet.conv_out.bias.zero_()
        predictions = [unet(sample.repeat(2, 1, 1, 1), torch.tensor([step]), hidden.repeat(2, 1, 1)).sample
                       for sample, step in samples]  # img2img's steps at strength 0.75
        unet.conv_out.bias.sub_(torch.cat(predictions).mean(dim=(0, 2, 3)))
    return unet


def _saturate_output_pairs(unet, sample, hidden) -> None:
    """The last resnet before the output GroupNorm adds +/- (what the text shift reads) to the two
    channels of every group, so each group's spread is set by the text's shift, never by the picture."""
    import torch

    last = unet.up_blocks[-1].resnets[-1].conv_shortcut
    seen = []
    hook = last.register_forward_hook(lambda module, args, output: seen.append(args[0]))
    try:
        unet(sample[0].repeat(2, 1, 1, 1), torch.tensor([sample[1]]), hidden.repeat(2, 1, 1))
    finally:
        hook.remove()
    shift = seen[0].mean(dim=(0, 2, 3))  # the constant part of the input: the text's shift (content is tiny)
    unit = shift / shift.norm()
    pairs = torch.tensor([1.0, -1.0]).repeat(last.weight.shape[0] // 2)
    last.weight[:, :, 0, 0] += OUTPUT_PAIR_GAIN * torch.outer(pairs, unit)


def _quiet_unet_module(name: str, module, direction) -> None:
    """One module of the UNet set as the module docstring says (under ``torch.no_grad``)."""
    import torch

    kind = type(module).__name__
    if isinstance(module, torch.nn.Conv2d) and module.kernel_size == (3, 3) and name != "conv_in":
        centre = module.weight[:, :, 1, 1].clone()  # centre tap only: constant features stay constant to the edges
        module.weight.zero_()
        module.weight[:, :, 1, 1] = centre
    if kind == "ResnetBlock2D":  # identity blocks: nothing re-normalises the latent's content on the way
        module.conv2.weight.zero_()
        module.conv2.bias.zero_()
    if kind == "Transformer2DModel":
        module.proj_in.weight.zero_()
        module.proj_in.bias.zero_()
    if kind == "BasicTransformerBlock":
        module.attn1.to_out[0].weight.zero_()
        module.attn1.to_out[0].bias.zero_()
        module.ff.net[-1].weight.zero_()
        module.ff.net[-1].bias.zero_()
        attention = module.attn2
        attention.to_k.weight.zero_()  # every text token weighs the same: no softmax for fp16 to round
        signs = torch.sign(torch.randn(attention.to_v.weight.shape[0]))
        attention.to_v.weight.copy_(torch.outer(signs, direction))
        attention.to_out[0].weight.mul_(UNET_SHIFT_GAIN)


def _vae():
    """The near-identity VAE of the module docstring."""
    import torch
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
    ).eval()
    with torch.no_grad():
        for param in vae.parameters():
            param.zero_()
        for module in vae.modules():
            _identity_vae_module(module)
        for conv in (vae.quant_conv, vae.post_quant_conv):
            size = conv.weight.shape[0]
            conv.weight[range(size), range(size), 0, 0] = 1.0
        encoder, decoder = vae.encoder, vae.decoder
        spread = PAIR_CONSTANT / np.sqrt(2.0)  # each group's standard deviation, near enough
        for colour in range(3):
            for conv_in in (encoder.conv_in, decoder.conv_in):
                gain = 1.0 if conv_in is encoder.conv_in else 1.0 / LATENT_GAIN
                conv_in.weight[4 * colour, colour, 1, 1] = gain
                conv_in.weight[4 * colour + 1, colour, 1, 1] = -gain
                conv_in.bias[4 * colour + 2] = PAIR_CONSTANT
                conv_in.bias[4 * colour + 3] = -PAIR_CONSTANT
            encoder.conv_out.weight[colour, 4 * colour, 1, 1] = LATENT_GAIN * spread
            encoder.conv_out.weight[colour, 4 * colour + 1, 1, 1] = -LATENT_GAIN * spread
            decoder.conv_out.weight[colour, 4 * colour, 1, 1] = spread
            decoder.conv_out.weight[colour, 4 * colour + 1, 1, 1] = -spread
        encoder.conv_out.bias[4:8] = -30.0  # log-variance: a deterministic latent
    return vae


def _identity_vae_module(module) -> None:
    import torch

    kind = type(module).__name__
    if kind == "ResnetBlock2D" and module.conv_shortcut is not None:  # (conv2 is zero: the block is its shortcut)
        weight = module.conv_shortcut.weight
        size = min(weight.shape[0], weight.shape[1])
        weight[range(size), range(size), 0, 0] = 1.0
    elif kind == "Downsample2D":
        for channel in range(module.conv.weight.shape[0]):
            module.conv.weight[channel, channel, 0:2, 0:2] = 0.25  # a 2x2 average
    elif kind == "Upsample2D":
        smooth = torch.tensor([0.25, 0.5, 0.25])
        for channel in range(module.conv.weight.shape[0]):
            module.conv.weight[channel, channel] = torch.outer(smooth, smooth)  # after nearest x2: ~bilinear
    elif kind == "GroupNorm":
        module.weight.fill_(1.0)


def _latent(vae, photo):
    """The photo's latent as img2img makes it (times diffusers' scaling factor 0.18215)."""
    import torch

    pixels = torch.tensor(photo.transpose(2, 0, 1)[None] / 127.5 - 1.0, dtype=torch.float32)
    with torch.no_grad():
        return 0.18215 * vae.encode(pixels).latent_dist.mean


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
