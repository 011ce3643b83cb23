"""Alibaba's official osstorchconnector 1.2.3 from PyPI (closed C++ core), in its own venv.

It addresses buckets virtual-hosted only (`<bucket>.<endpoint host>`), so the harness gives it an
endpoint such as ``http://oss.bench.localhost:PORT`` and runs this script in a private mount
namespace whose /etc/hosts maps ``<bucket>.oss.bench.localhost`` to 127.0.0.1.
"""

from __future__ import annotations

from _common import parse_args, run, time_oss_datasets

if __name__ == "__main__":
    run(parse_args(__doc__ or ""), time_oss_datasets)
