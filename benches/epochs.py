"""Our dataset read whole for several epochs in one process: MB/s, CPU s/GB and page faults per
epoch, and how long each object's `read()` took in the first — for A/B runs of a change.

    W=~/.cache/osstorchconnector-bench
    $W/harness/bin/python benches/servers.py --root $W/data/root &   # prints the fast port
    .venv/bin/python benches/epochs.py --endpoint http://127.0.0.1:PORT --prefix large/ \\
        --cred-path $W/work/cred.json [--config-path FILE] [--epochs 3] [--kept]

With --kept, each epoch first collects the objects (the loop moves past each one, so its rest is
no longer streamed) and then reads them whole by range: the rate of kept, copied or unpickled
objects, to set beside the streamed one.

Run it several times, alternating the variants: each run is a new process, so the first epoch
shows start-up costs and the later ones the steady rate (see BENCHMARKS.md, "Warm row").
"""

from __future__ import annotations

import argparse
import resource
import time

from osstorchconnector import OssIterableDataset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", default="bench")
    p.add_argument("--prefix", required=True)
    p.add_argument("--cred-path", required=True)
    p.add_argument("--config-path", default="")
    p.add_argument("--region", default="cn-hangzhou")
    p.add_argument("--scheme", default="oss", choices=["oss", "s3"], help="protocol to speak")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--kept", action="store_true", help="collect the objects, then read them")
    a = p.parse_args()
    ds = OssIterableDataset.from_prefix(
        f"{a.scheme}://{a.bucket}/{a.prefix}",
        endpoint=a.endpoint,
        cred_path=a.cred_path,
        config_path=a.config_path,
        region=a.region,
    )
    for epoch in range(a.epochs):
        cpu0 = time.process_time()
        faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        total = 0
        reads: list[float] = []
        for obj in list(ds) if a.kept else ds:
            began = time.perf_counter()
            total += len(obj.read())
            reads.append(time.perf_counter() - began)
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
        line = (
            f"epoch {epoch + 1}: {total / seconds / 1e6:7.0f} MB/s  "
            f"{cpu / max(total, 1) * 1e9:5.2f} CPU s/GB  {faults} page faults"
        )
        if epoch == 0 and len(reads) <= 16:
            line += "  read() ms: " + " ".join(f"{r * 1000:.0f}" for r in reads)
        print(line, flush=True)


if __name__ == "__main__":
    main()
