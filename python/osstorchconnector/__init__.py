"""osstorchconnector: stream training data from Alibaba Cloud OSS into PyTorch.

A Rust core signs (OSS V4), lists and downloads with many requests in flight; this package wraps
it in the dataset API of the official OSS Connector for AI/ML.
"""

from ._core import __version__
from .checkpoint import OssCheckpoint
from .client import OssClient
from .data_object import DataObject
from .exceptions import (
    OssConfigError,
    OssError,
    OssFormatError,
    OssNotFoundError,
    OssObjectChangedError,
    OssPermissionError,
    OssTimeoutError,
)
from .iterable_dataset import OssIterableDataset, identity
from .manifest import imagenet_manifest_parser
from .map_dataset import OssMapDataset
from .safetensor import OssSafetensor
from .tar_archive import generate_tar_archive
from .writer import ObjectWriter

try:
    from .fsspec_oss import register as _register_fsspec
except ImportError:  # no fsspec: dcp.save(checkpoint_id="oss://...") is not offered
    pass
else:
    _register_fsspec()

_LAZY = {"OssDCPFileSystem", "OssStorageReader", "OssStorageWriter"}


def __getattr__(name: str) -> object:
    # The DCP classes import torch.distributed.checkpoint: only when asked for, so the package
    # imports without torch.
    if name in _LAZY:
        from . import dcp

        return getattr(dcp, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DataObject",
    "ObjectWriter",
    "OssCheckpoint",
    "OssClient",
    "OssConfigError",
    "OssDCPFileSystem",
    "OssError",
    "OssFormatError",
    "OssIterableDataset",
    "OssMapDataset",
    "OssNotFoundError",
    "OssObjectChangedError",
    "OssPermissionError",
    "OssSafetensor",
    "OssStorageReader",
    "OssStorageWriter",
    "OssTimeoutError",
    "__version__",
    "generate_tar_archive",
    "identity",
    "imagenet_manifest_parser",
]
