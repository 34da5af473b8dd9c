"""--augment: open_clip's random resized crop when on; when off, the evaluation transform and no random draw."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from clipline.pipelines.models.registry import build_model

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's normalisation, as open_clip's constants give it
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def noise_image(height: int, width: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))


def wide_image() -> Image.Image:
    """Not square: a centre crop and a squeeze to the model's square input give different pixels."""
    return noise_image(48, 80)


def test_without_augmentation_training_images_take_the_evaluation_transform_and_draw_nothing():
    preprocess = build_model("clipline-tiny", augment=False).preprocess_train
    # clipline-tiny takes 64 px: the shorter side resized to 64 (bicubic), the centre 64 x 64, normalised.
    expected = v2.Compose([v2.PILToTensor(), v2.Resize(64, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
                           v2.CenterCrop(64), v2.ToDtype(torch.float32, scale=True), v2.Normalize(CLIP_MEAN, CLIP_STD)])
    torch.manual_seed(0)
    before = torch.get_rng_state()
    image = preprocess(wide_image())
    assert torch.equal(torch.get_rng_state(), before), "the transform drew from torch's RNG"
    torch.testing.assert_close(image, expected(wide_image()), atol=2e-2, rtol=0)  # tensor vs PIL resize rounding


def test_with_augmentation_each_pass_crops_anew():
    preprocess = build_model("clipline-tiny", augment=True).preprocess_train
    torch.manual_seed(0)  # square: a crop of 90-100% of the area at a random aspect ratio fits most draws
    first, second = preprocess(noise_image(96, 96)), preprocess(noise_image(96, 96))
    assert first.shape == second.shape == (3, 64, 64)
    assert not torch.equal(first, second)
