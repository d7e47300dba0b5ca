"""How the tiny Stable Diffusion pipeline's weights are set, so that pictures mean something (no training).

- VAE (``identity_vae``): a near-identity mapping. Each colour channel x travels with -x and the
  constants +K, -K in one GroupNorm group, so the group's mean is 0 and its spread is ~K/sqrt(2)
  whatever the picture; SiLU(y) - SiLU(-y) = y undoes the activation; the resnets, attention and
  downsampler are identities or a 2x2 average, the upsampler is close to bilinear. The encoder's
  latent is the picture at half resolution times a large gain (``LATENT_GAIN``), so img2img's added
  noise is small beside it, and its log-variance is -30 (a deterministic latent).
- UNet (``quiet_unet``): its noise prediction is near zero while it reads the text encoder's output
  as fp32 gives it. Its resnets, self-attention and feed-forward layers are identities and its input
  convolution is tiny, so the noisy latent's content stays small. Every cross-attention reads the
  text's tokens (evenly) along one direction, orthogonal to the final LayerNorm's bias, and adds what
  it reads as a large constant shift; the last resnet puts that shift, +/-, into both channels of
  every output GroupNorm pair, so each pair reads exactly (+1, -1), and conv_out's weights are set to
  cancel it. Without the shift (embeddings that collapsed to the final LayerNorm's bias read exactly
  0 along that direction) the GroupNorm amplifies the noisy latent instead: a large, wrong noise
  prediction -- which is what the fp16 text encoder's overflow does to the picture.
"""

from __future__ import annotations

import numpy as np

LATENT_GAIN = 2000.0  # VAE encoder: latent = gain x picture, so img2img's unit-variance noise is small beside it
PAIR_CONSTANT = 4.0  # the +K / -K channels that fix each VAE GroupNorm group's spread
UNET_CONTENT_GAIN = 1e-4  # unet conv_in: the latent's content, small beside the text's shift
UNET_SHIFT_GAIN = 300.0  # cross-attention output gain: the shift that reading the text causes
OUTPUT_PAIR_GAIN = 20.0  # the text's shift into each output GroupNorm pair, +/- (see _saturate_output_pairs)
TEXT_READING = 5.5  # what the cross-attention values read from the fp32 embeddings (their tokens' mean)
UNET_EPS_GAIN = 3000.0  # conv_out gain: how large the noise prediction is when that shift is missing
CALIBRATION_STEPS = ((751.0, 0.0557), (501.0, 0.2750), (251.0, 0.6722))  # img2img's (t, cumulative alpha)


def quiet_unet(text_encoder, prompt_ids: list[int], latent, *, sample_size: int, seed: int):
    """The UNet of the module docstring: near-zero noise prediction while it reads the fp32 text."""
    import torch
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=sample_size, in_channels=4, out_channels=4,
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
        generator = torch.Generator().manual_seed(seed)
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


def identity_vae():
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


def photo_latent(vae, photo):
    """The photo's latent as img2img makes it (times diffusers' scaling factor 0.18215)."""
    import torch

    pixels = torch.tensor(photo.transpose(2, 0, 1)[None] / 127.5 - 1.0, dtype=torch.float32)
    with torch.no_grad():
        return 0.18215 * vae.encode(pixels).latent_dist.mean
