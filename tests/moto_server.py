"""A second S3 server for the tests: moto's (`python -m moto.server`), on a free loopback port.

It checks SigV4 once IAM users exist: it is started with `INITIAL_NO_AUTH_ACTION_COUNT=3`, and
those first three (unsigned) requests create a user, its key pair and a policy allowing
everything, with boto3's IAM client. From then on every request must be signed with that key.

Unlike s3s-fs (tests/s3_server.py), moto encodes keys in listings asked for with
`encoding-type=url`, as AWS does: keys holding `+`, `%` or spaces are checked here. Fixtures are
written and read back with minio, never with our client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
from minio import Minio
from s3_server import _free_port, _listening, stop_process

REGION = "us-east-1"


@dataclass
class MotoServer:
    endpoint: str
    access_key: str
    secret_key: str
    log_path: Path

    def client(self) -> Minio:
        return Minio(
            self.endpoint.removeprefix("http://"),
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region=REGION,
        )


def _create_user(endpoint: str) -> tuple[str, str]:
    """The three unauthenticated actions: a user, its key pair, a policy allowing all."""
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
    )
    iam.create_user(UserName="tests")
    key = iam.create_access_key(UserName="tests")["AccessKey"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName="tests", PolicyName="all", PolicyDocument=json.dumps(policy))
    return key["AccessKeyId"], key["SecretAccessKey"]


@contextmanager
def running_moto(log_path: Path) -> Iterator[MotoServer]:
    """moto's server, checking SigV4 for one key pair, until the block ends."""
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    for _ in range(3):  # the port may be taken between the probe and the server's bind
        port = _free_port()
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env
            )
        if _listening(process, port):
            break
        stop_process(process)
    else:
        raise RuntimeError(f"moto did not start; its log:\n{log_path.read_text()[-4000:]}")
    try:
        endpoint = f"http://127.0.0.1:{port}"
        access_key, secret_key = _create_user(endpoint)
        yield MotoServer(endpoint, access_key, secret_key, log_path)
    finally:
        stop_process(process)
