"""torchvision's ImageNet weights for medbench's models: the registry, the torch hub cache, and loading.

The checkpoints are torchvision's own (``IMAGENET1K_V1``, from ``download.pytorch.org/models``). Every
back-end names its parameters as torchvision does, so one ``.pth`` serves PyTorch, JAX and Keras alike.

* :mod:`~medbench.pretrained.registry`: the published files, what torchvision says about them, and torch
  hub's rule that the hex digits after the last ``-`` of a file name start its SHA-256.
* :mod:`~medbench.pretrained.cache`: where files live (``$TORCH_HOME/hub/checkpoints``, shared with
  torchvision) and how one is checked.
* :mod:`~medbench.pretrained.download`: the user's own file, or the cached one, downloaded when missing
  (``$MEDBENCH_WEIGHTS_MIRROR`` replaces download.pytorch.org).
* :mod:`~medbench.pretrained.loading`: the backbone must fit exactly; the head is loaded only when it fits.

Nothing here imports a framework, and importing this package stays cheap: the CLI does at start-up.
"""

from medbench.data.imagenet import IMAGENET_MEAN, IMAGENET_STD
from medbench.pretrained.cache import (
    CheckpointCheck,
    cache_dir,
    cache_path,
    file_sha256,
    torch_home,
    verify_checkpoint,
)
from medbench.pretrained.download import (
    MIRROR_ENV_VAR,
    download_pretrained,
    resolve_pretrained,
    weights_url,
)
from medbench.pretrained.loading import load_pretrained
from medbench.pretrained.registry import (
    OFFICIAL_BASE_URL,
    PretrainedWeights,
    get_pretrained,
    hash_prefix,
    list_pretrained,
    sources,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MIRROR_ENV_VAR",
    "OFFICIAL_BASE_URL",
    "CheckpointCheck",
    "PretrainedWeights",
    "cache_dir",
    "cache_path",
    "download_pretrained",
    "file_sha256",
    "get_pretrained",
    "hash_prefix",
    "list_pretrained",
    "load_pretrained",
    "resolve_pretrained",
    "sources",
    "torch_home",
    "verify_checkpoint",
    "weights_url",
]
