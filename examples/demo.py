"""The main job, end to end on this machine: start the local OSS test server, upload a generated
image dataset with a manifest, and stream it through the seed document's DataLoader sample.

Run it with ``bash scripts/demo.sh`` (sets up .venv first). Throughput printed here is measured
against a single-process Python test server on loopback that checks every signature — it shows
the pipeline working, not what real OSS or a fast server delivers (see BENCHMARKS.md for that).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import torch
from PIL import Image
from tqdm import tqdm

from conftest import OssServer, start_oss_server, stop_oss_server
from osstorchconnector import OssIterableDataset, imagenet_manifest_parser

BUCKET = "ai-testset"
PREFIX = "EnglistImg/Img/Sample001/"

try:
    from torchvision import transforms

    TRANS: Any = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
except ImportError:  # the same steps with PIL and torch
    MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

    def TRANS(img: Image.Image) -> torch.Tensor:
        w, h = img.size
        scale = 256 / min(w, h)
        img = img.resize((round(w * scale), round(h * scale)))
        w, h = img.size
        left, top = (w - 224) // 2, (h - 224) // 2
        img = img.crop((left, top, left + 224, top + 224))
        t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        t = t.view(224, 224, 3).permute(2, 0, 1).float() / 255
        return (t - MEAN) / STD


def transform(obj: Any) -> tuple[torch.Tensor, int, int]:
    """The seed's custom transform, plus the byte count for the MB/s figure."""
    data = obj.read()
    img = Image.open(io.BytesIO(data)).convert("RGB")
    return TRANS(img), int(obj.label or 0), len(data)


def make_image(i: int, size_kb: int) -> bytes:
    rng = random.Random(i)
    side = max(64, int((size_kb * 1024 / 1.5) ** 0.5))  # noisy JPEG ≈ 1.5 bytes per pixel
    noise = rng.randbytes(side * side * 3)
    img = Image.frombytes("RGB", (side, side), noise)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def upload(server: OssServer, count: int, size_kb: int) -> tuple[int, bytes]:
    server.sdk_client().put_bucket(
        __import__("alibabacloud_oss_v2").PutBucketRequest(bucket=BUCKET)
    )
    images = {f"{PREFIX}img-{i:06d}.jpg": make_image(i, size_kb) for i in range(count)}
    manifest = "".join(f"{k[len('EnglistImg/') :]}\t{i % 10}\n" for i, k in enumerate(images))
    with ThreadPoolExecutor(16) as pool:
        list(
            tqdm(
                pool.map(lambda kv: server.put(BUCKET, kv[0], kv[1]), images.items()),
                total=count,
                desc="upload (official SDK)",
            )
        )
    server.put(BUCKET, "EnglistImg/manifest_file", manifest.encode())
    return sum(map(len, images.values())), manifest.encode()


def report(what: str, objects: int, nbytes: int, seconds: float) -> None:
    print(
        f"{what}: {objects} objects, {nbytes / 1e6:.1f} MB in {seconds:.2f} s → "
        f"{objects / seconds:,.0f} objects/s, {nbytes / 1e6 / seconds:,.1f} MB/s "
        "(local Python test server on loopback; not representative of OSS)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--size-kb", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="osstorchconnector-demo-") as tmp:
        server = start_oss_server(Path(tmp) / "root")
        try:
            total, manifest = upload(server, args.objects, args.size_kb)
            cred_path = str(server.write_cred_file(Path(tmp) / "credentials"))
            config_path = Path(tmp) / "config.json"
            config_path.write_text(json.dumps({"datasetConfig": {"prefetchConcurrency": 24}}))
            common = {
                "endpoint": server.endpoint,
                "region": server.region,  # an IP endpoint names no region
                "cred_path": cred_path,
                "config_path": str(config_path),
            }
            oss_uri = f"oss://{BUCKET}/{PREFIX}"
            print(f"server {server.endpoint}, {args.objects} images, {total / 1e6:.1f} MB")

            # (a) Raw streaming in one process: for item in dataset: item.read()
            ds = OssIterableDataset.from_prefix(oss_uri, **common)
            start, n, nbytes = time.perf_counter(), 0, 0
            for item in tqdm(ds, total=args.objects, desc="stream"):
                nbytes += len(item.read())
                n += 1
            report("stream, one process", n, nbytes, time.perf_counter() - start)

            # (b) The seed's DataLoader sample with its image transform.
            ds = OssIterableDataset.from_prefix(oss_uri, transform=transform, **common)
            loader = torch.utils.data.DataLoader(
                ds, batch_size=args.batch_size, num_workers=args.workers, prefetch_factor=2
            )
            start, n, nbytes = time.perf_counter(), 0, 0
            batches = -(-args.objects // args.batch_size)
            for images, _labels, sizes in tqdm(loader, total=batches, desc="DataLoader"):
                n += len(images)
                nbytes += int(sizes.sum())
            report(
                f"DataLoader (decode + resize/crop/normalize, {args.workers} workers)",
                n,
                nbytes,
                time.perf_counter() - start,
            )

            # (c) The same images through the manifest in the bucket, with its labels.
            ds = OssIterableDataset.from_manifest_file(
                manifest_file_path=f"oss://{BUCKET}/EnglistImg/manifest_file",
                manifest_parser=imagenet_manifest_parser,
                oss_base_uri=f"oss://{BUCKET}/EnglistImg/",
                transform=transform,
                **common,
            )
            loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=0)
            images, labels, _sizes = next(iter(loader))
            print(f"manifest: first batch {tuple(images.shape)}, labels {labels.tolist()}")
            print(f"manifest: {len(manifest.splitlines())} entries")
        finally:
            stop_oss_server(server)


if __name__ == "__main__":
    main()
