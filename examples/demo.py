"""The main job, end to end on this machine: start the local OSS test server, upload a generated
image dataset with a manifest, and stream it through the seed document's DataLoader sample.

Run it with ``bash scripts/demo.sh`` (sets up .venv first), or ``python examples/demo.py`` inside
the venv. Throughput printed here is measured against a single-process Python test server on
loopback that checks every signature: it shows the pipeline working, not what real OSS or a fast
server delivers.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# The test server and its launcher live under tests/ (the same ones the test suite uses).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import alibabacloud_oss_v2 as oss  # type: ignore[import-untyped]
import torch
from PIL import Image
from tqdm import tqdm

from conftest import OssServer, start_oss_server, stop_oss_server
from osstorchconnector import (
    DataObject,
    OssCheckpoint,
    OssIterableDataset,
    imagenet_manifest_parser,
)

BUCKET = "ai-testset"
BASE = "EnglistImg/"  # the seed's oss_base_uri is oss://ai-testset/EnglistImg/
PREFIX = BASE + "Img/Sample001/"
MANIFEST_KEY = BASE + "manifest_file"
CLASSES = 10
NOTE = "(local Python test server on loopback; not representative of OSS)"


def _seed_transforms() -> Callable[[Image.Image], torch.Tensor]:
    """The seed's preprocessing: torchvision when installed, else the same steps by hand."""
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    try:
        from torchvision import transforms
    except ImportError:
        mean_t, std_t = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)

        def trans(img: Image.Image) -> torch.Tensor:
            w, h = img.size  # Resize(256): short side 256, long side truncated as torchvision does
            size = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
            img = img.resize(size, Image.Resampling.BILINEAR)
            w, h = img.size  # CenterCrop(224)
            left, top = round((w - 224) / 2), round((h - 224) / 2)
            img = img.crop((left, top, left + 224, top + 224))
            # ToTensor: HWC uint8 -> CHW float in [0, 1]
            t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
            t = t.view(224, 224, 3).permute(2, 0, 1).float() / 255
            return (t - mean_t) / std_t

        return trans
    compose: Callable[[Image.Image], torch.Tensor] = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=mean, std=std),
        ]
    )
    return compose


TRANS = _seed_transforms()


def transform(obj: DataObject) -> tuple[torch.Tensor, int, int]:
    """The seed's custom transform (decode + preprocess; returns data, not the DataObject), plus
    the byte count for the MB/s figure."""
    data = obj.read()
    img = Image.open(io.BytesIO(data)).convert("RGB")
    # from_prefix objects have no label ("" -> -1); manifest ones carry "0".."9".
    return TRANS(img), int(obj.label) if obj.label else -1, len(data)


def key_label_size(obj: DataObject) -> tuple[str, str, int]:
    return obj.key, obj.label, len(obj.read())


def make_image(i: int, side: int) -> bytes:
    """A JPEG of random noise: incompressible, so its size is predictable from its side."""
    noise = random.Random(i).randbytes(side * side * 3)
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), noise).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def side_for(size_kb: int) -> int:
    """The image side whose noise JPEG is about ``size_kb`` KiB, measured on one sample."""
    probe = 200
    bytes_per_pixel = len(make_image(-1, probe)) / probe**2
    return max(16, round(math.sqrt(size_kb * 1024 / bytes_per_pixel)))


def upload(server: OssServer, count: int, size_kb: int, manifest_path: Path) -> int:
    """Generates and uploads ``count`` images through the official SDK; writes the manifest
    (``key<TAB>label``, keys relative to ``BASE``) to ``manifest_path`` and to the bucket.
    Returns the bytes uploaded."""
    server.sdk_client().put_bucket(oss.PutBucketRequest(bucket=BUCKET))
    side = side_for(size_kb)

    def put(i: int) -> int:
        data = make_image(i, side)
        server.put(BUCKET, f"{PREFIX}img-{i:06d}.jpg", data)
        return len(data)

    # PIL encodes and the SDK waits on sockets without the GIL: threads make this seconds.
    pool = ThreadPoolExecutor(16)
    try:
        sizes = pool.map(put, range(count))
        total = sum(tqdm(sizes, total=count, desc="upload (official SDK)", disable=None))
    finally:
        # On Ctrl-C or a failed upload, drop the queued uploads instead of waiting for them.
        pool.shutdown(cancel_futures=True)
    manifest = "".join(
        f"{PREFIX.removeprefix(BASE)}img-{i:06d}.jpg\t{i % CLASSES}\n" for i in range(count)
    ).encode()
    manifest_path.write_bytes(manifest)
    server.put(BUCKET, MANIFEST_KEY, manifest)
    return total


def report(what: str, objects: int, nbytes: int, seconds: float) -> None:
    print(
        f"{what}: {objects} objects, {nbytes / 1e6:.1f} MB in {seconds:.2f} s -> "
        f"{objects / seconds:,.0f} objects/s, {nbytes / 1e6 / seconds:,.1f} MB/s {NOTE}",
        flush=True,
    )


def expect(what: str, got: object, want: object) -> None:
    if got != want:
        raise SystemExit(f"demo failed: {what}: got {got}, expected {want}")


def run(args: argparse.Namespace, tmp: Path, server: OssServer) -> None:
    manifest_path = tmp / "manifest_file"
    total = upload(server, args.objects, args.size_kb, manifest_path)
    cred_path = server.write_cred_file(tmp / "credentials")
    config_path = tmp / "config.json"
    config_path.write_text(
        json.dumps({"logLevel": 2, "datasetConfig": {"prefetchConcurrency": 24}})
    )
    common: dict[str, Any] = {
        "endpoint": server.endpoint,
        "region": server.region,  # an IP endpoint names no region
        "cred_path": str(cred_path),
        "config_path": str(config_path),
    }
    oss_uri = f"oss://{BUCKET}/{PREFIX}"
    print(
        f"server {server.endpoint}; uploaded {args.objects} JPEGs under {oss_uri}, "
        f"{total / 1e6:.1f} MB ({total / max(args.objects, 1) / 1024:.0f} KiB each)",
        flush=True,
    )

    # (a) Raw streaming in one process, as the seed's first sample: for item in ds: item.read()
    ds = OssIterableDataset.from_prefix(oss_uri, **common)
    start, n, nbytes = time.perf_counter(), 0, 0
    for item in tqdm(ds, total=args.objects, desc="stream", unit="obj", disable=None):
        nbytes += len(item.read())
        n += 1
    report("(a) from_prefix, raw read, one process", n, nbytes, time.perf_counter() - start)
    expect("objects streamed", (n, nbytes), (args.objects, total))

    # (b) The seed's DataLoader sample with its image transform.
    ds = OssIterableDataset.from_prefix(oss_uri, transform=transform, **common)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=args.batch_size,
        num_workers=args.workers,
        prefetch_factor=2 if args.workers else None,
    )
    start, n, nbytes = time.perf_counter(), 0, 0
    with tqdm(total=args.objects, desc="DataLoader", unit="img", disable=None) as bar:
        for images, _labels, sizes in loader:
            n += len(images)
            nbytes += int(sizes.sum())
            bar.update(len(images))
    report(
        f"(b) DataLoader, decode + resize/crop/normalize, {args.workers} workers",
        n,
        nbytes,
        time.perf_counter() - start,
    )
    expect("images through the DataLoader", (n, nbytes), (args.objects, total))

    # (c) The seed's from_manifest_file, option 1: a local manifest, with its labels.
    ds = OssIterableDataset.from_manifest_file(
        manifest_file_path=str(manifest_path),
        manifest_parser=imagenet_manifest_parser,
        oss_base_uri=f"oss://{BUCKET}/{BASE}",
        transform=key_label_size,
        **common,
    )
    got = list(ds)
    labels = Counter(label for _key, label, _size in got)
    print(
        f"(c) from_manifest_file (local): {len(got)} objects, "
        f"{sum(size for *_, size in got) / 1e6:.1f} MB, per label {dict(sorted(labels.items()))}",
        flush=True,
    )
    expect("manifest entries", len(got), args.objects)
    expect("first manifest entry", got[0][:2], (f"{PREFIX}img-000000.jpg", "0"))

    # (d) Option 2: the manifest in the bucket, through the seed's DataLoader sample.
    ds = OssIterableDataset.from_manifest_file(
        manifest_file_path=f"oss://{BUCKET}/{MANIFEST_KEY}",
        manifest_parser=imagenet_manifest_parser,
        oss_base_uri=f"oss://{BUCKET}/{BASE}",
        transform=transform,
        **common,
    )
    first = min(8, args.objects)
    images, labels_t, _sizes = next(iter(torch.utils.data.DataLoader(ds, batch_size=first)))
    print(
        f"(d) from_manifest_file (oss://{BUCKET}/{MANIFEST_KEY}): first batch "
        f"{tuple(images.shape)}, labels {labels_t.tolist()}",
        flush=True,
    )
    expect("first batch labels", labels_t.tolist(), [i % CLASSES for i in range(first)])

    # (e) A checkpoint: torch.save straight to the bucket (multipart, atomic), torch.load by range.
    checkpoint = OssCheckpoint(**common)
    g = torch.Generator().manual_seed(0)
    state = {
        f"layer{i}.weight": torch.randn(8 * 2**20 // 4, generator=g)
        for i in range(args.ckpt_mb // 8)
    }
    uri = f"oss://{BUCKET}/checkpoints/demo.pt"
    start = time.perf_counter()
    with checkpoint.writer(uri) as writer:
        torch.save(state, writer)
        size = writer.tell()
    saved = time.perf_counter() - start
    start = time.perf_counter()
    with checkpoint.reader(uri) as reader:
        loaded = torch.load(reader, weights_only=True)
    read = time.perf_counter() - start
    expect("checkpoint tensors", all(torch.equal(loaded[k], v) for k, v in state.items()), True)
    print(
        f"(e) OssCheckpoint {size / 1e6:.0f} MB: torch.save {size / 1e6 / saved:,.0f} MB/s, "
        f"torch.load {size / 1e6 / read:,.0f} MB/s {NOTE}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000, help="images to generate (2000)")
    parser.add_argument("--size-kb", type=int, default=100, help="approximate image size (100)")
    parser.add_argument("--batch-size", type=int, default=64, help="DataLoader batch size (64)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (2)")
    parser.add_argument("--ckpt-mb", type=int, default=256, help="checkpoint size, MB (256)")
    args = parser.parse_args()
    if args.objects < 1 or args.size_kb < 1 or args.batch_size < 1 or args.workers < 0:
        parser.error("--objects, --size-kb and --batch-size must be >= 1, --workers >= 0")
    if args.ckpt_mb < 8:
        parser.error("--ckpt-mb must be >= 8")

    # `kill PID` cleans up like Ctrl-C does: SystemExit unwinds through the finally below.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(128 + signal.SIGTERM))
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="osstorchconnector-demo-") as tmp:
        server = start_oss_server(Path(tmp) / "root")
        try:
            run(args, Path(tmp), server)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            try:
                stop_oss_server(server)
            except RuntimeError:
                # Ctrl-C reaches the server too (same process group) and it exits on it; that
                # is not the failure stop_oss_server reports a dead server as.
                if not interrupted:
                    raise
    if interrupted:
        print("interrupted; server stopped and temporary files removed", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
