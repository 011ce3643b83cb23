"""torch DataLoader integration: every object exactly once per epoch with any number of
workers, the seed's DataLoader and image-transform samples, and objects pickled out of workers."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conftest import OssServer, Store
from osstorchconnector import DataObject, OssIterableDataset

torch = pytest.importorskip("torch")
DataLoader = torch.utils.data.DataLoader

SAMPLES = Path(__file__).parent / "seed_samples"
PREFIX = "EnglistImg/Img/BadImag/Bmp/Sample001/"


@pytest.fixture
def options(oss_server: OssServer, tmp_path: Path) -> dict[str, Any]:
    return oss_server.dataset_options(
        tmp_path, {"datasetConfig": {"prefetchUnitMB": 1, "prefetchMB": 16}}
    )


@pytest.fixture
def objects(oss_server: OssServer, bucket: str) -> dict[str, bytes]:
    sizes = [0, 1, 100, 5000, 70_000] * 20 + [1_500_000, 2_100_000]
    data = {f"dl/{i:04d}.bin": os.urandom(n) for i, n in enumerate(sizes)}
    for k, v in data.items():
        oss_server.put(bucket, k, v)
    return data


def key_and_digest(obj: DataObject) -> tuple[str, int]:
    # crc32, not hash(): bytes hashes differ between processes started with spawn.
    return obj.key, zlib.crc32(obj.read())


def flatten(loader: Any) -> list[tuple[str, int]]:
    out = []
    for keys, digests in loader:
        out.extend(zip(keys, (int(d) for d in digests), strict=True))
    return out


@pytest.mark.parametrize("num_workers", [0, 1, 2, 4])
@pytest.mark.parametrize("factory", ["from_prefix", "from_objects"])
def test_every_object_once_per_epoch(
    bucket: str,
    objects: dict[str, bytes],
    options: dict[str, Any],
    num_workers: int,
    factory: str,
) -> None:
    if factory == "from_prefix":
        ds = OssIterableDataset.from_prefix(
            f"oss://{bucket}/dl/", transform=key_and_digest, **options
        )
    else:
        uris = [f"oss://{bucket}/{k}" for k in objects]
        ds = OssIterableDataset.from_objects(uris, transform=key_and_digest, **options)
    loader = DataLoader(ds, batch_size=16, num_workers=num_workers)
    want = Counter((k, zlib.crc32(v)) for k, v in objects.items())
    for _epoch in range(2):
        assert Counter(flatten(loader)) == want


def test_persistent_workers_across_epochs(
    bucket: str, objects: dict[str, bytes], options: dict[str, Any]
) -> None:
    ds = OssIterableDataset.from_prefix(f"oss://{bucket}/dl/", transform=key_and_digest, **options)
    loader = DataLoader(ds, batch_size=16, num_workers=2, persistent_workers=True)
    want = Counter((k, zlib.crc32(v)) for k, v in objects.items())
    for _epoch in range(3):
        assert Counter(flatten(loader)) == want


def test_spawned_workers_and_a_dataset_iterated_in_the_parent_first(
    bucket: str, objects: dict[str, bytes], options: dict[str, Any]
) -> None:
    ds = OssIterableDataset.from_prefix(f"oss://{bucket}/dl/", transform=key_and_digest, **options)
    want = Counter((k, zlib.crc32(v)) for k, v in objects.items())
    assert Counter(ds) == want  # the parent now has a runtime and open connections
    for context in ("fork", "spawn", "forkserver"):
        loader = DataLoader(ds, batch_size=16, num_workers=2, multiprocessing_context=context)
        assert Counter(flatten(loader)) == want, context


def test_copied_objects_pickle_out_of_workers(
    bucket: str, objects: dict[str, bytes], options: dict[str, Any]
) -> None:
    ds = OssIterableDataset.from_prefix(f"oss://{bucket}/dl/", **options)  # default: copies
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    got = {}
    for obj in loader:
        assert isinstance(obj, DataObject)
        got[obj.key] = obj.read()  # read in the parent, after the worker moved on
    assert got == objects


def write_images(store: Store, count: int) -> dict[str, bytes]:
    from PIL import Image

    images = {}
    for i in range(count):
        img = Image.new("RGB", (300 + i * 7, 260 + i * 5), (i * 40 % 256, 100, 200 - i * 9))
        buf = io.BytesIO()
        img.save(buf, format="PNG" if i % 2 else "JPEG")
        images[f"{PREFIX}img001-{i:05d}.png"] = buf.getvalue()
    for k, v in images.items():
        store.put(k, v)
    return images


def run_sample(name: str, store: Store, tmp_path: Path, **replace: str) -> list[str]:
    text = (SAMPLES / name).read_text()
    config = tmp_path / "config.json"
    config.write_text("{}")
    constants = {
        "ENDPOINT": store.endpoint,
        "CONFIG_PATH": str(config),
        "CRED_PATH": str(store.write_cred_file(tmp_path / "cred.json")),
    }
    for name_, value in constants.items():
        text = re.sub(rf'{name_} = ".*"', f'{name_} = "{value}"', text)
    text = text.replace("oss://ai-testset/", store.uri())
    for old, new in replace.items():
        text = text.replace(old, new)
    script = tmp_path / name
    script.write_text(text)
    env = {**os.environ, **store.region_env}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_seed_dataloader_sample(store: Store, tmp_path: Path) -> None:
    images = write_images(store, 12)
    store.put("EnglistImg/elsewhere.png", b"outside the prefix")
    lines = run_sample("dataloader.py", store, tmp_path, **{"num_workers=32": "num_workers=2"})
    assert sorted(lines) == sorted(f"{k}\t" for k in images)


def test_seed_custom_transform_sample(store: Store, tmp_path: Path) -> None:
    pytest.importorskip("torchvision")
    from PIL import Image
    from torchvision import transforms

    images = write_images(store, 6)
    lines = run_sample("custom_transform.py", store, tmp_path)
    trans = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    want = []
    for key in sorted(images, key=str.encode):
        val = trans(Image.open(io.BytesIO(images[key])).convert("RGB"))
        want.append(f"{tuple(val.shape)} '' {float(val.mean()):.6f}")
    assert lines == want
