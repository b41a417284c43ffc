"""torchvision's ImageNet statistics (RGB, on the [0, 1] scale): what its pretrained weights were trained on.

Kept apart, and free of numpy, so that the pipeline's normalisation and the weights registry (which the CLI
imports at start-up) share one copy.
"""

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
