"""The exception hierarchy: builtin bases, attributes, and pickling across processes."""

from __future__ import annotations

import pickle

import pytest

from osstorchconnector import (
    OssConfigError,
    OssError,
    OssNotFoundError,
    OssPermissionError,
    OssTimeoutError,
)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (OssNotFoundError, FileNotFoundError),
        (OssPermissionError, PermissionError),
        (OssConfigError, ValueError),
        (OssTimeoutError, TimeoutError),
    ],
)
def test_subclasses_builtins_and_pickles(cls: type[OssError], builtin: type) -> None:
    err = cls("GET oss://b/k failed", code="C", status=404, request_id="R", bucket="b", key="k")
    assert isinstance(err, OssError) and isinstance(err, builtin)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == "GET oss://b/k failed"
    assert (back.code, back.status, back.request_id, back.bucket, back.key) == (
        "C",
        404,
        "R",
        "b",
        "k",
    )
