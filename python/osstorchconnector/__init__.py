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

__all__ = [
    "DataObject",
    "ObjectWriter",
    "OssCheckpoint",
    "OssClient",
    "OssConfigError",
    "OssError",
    "OssFormatError",
    "OssIterableDataset",
    "OssMapDataset",
    "OssNotFoundError",
    "OssObjectChangedError",
    "OssPermissionError",
    "OssSafetensor",
    "OssTimeoutError",
    "__version__",
    "generate_tar_archive",
    "identity",
    "imagenet_manifest_parser",
]
