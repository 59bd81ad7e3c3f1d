"""A real S3-compatible server for tests: moto in server mode on loopback.

``moto_server`` (session scope) starts ``ThreadedMotoServer`` on a free port of 127.0.0.1 once;
``s3_bucket`` (function scope) points the standard AWS variables at it (``AWS_ENDPOINT_URL``,
keys, region: what pyarrow, boto3 and a subprocess started by the test read) and creates a fresh
bucket, whose name it returns. Import both (``moto_server_fixture``, ``s3_bucket_fixture``) into a
test module to use them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow.fs as pafs
import pytest

from tests.ingest.lakeutil import free_port

moto_server_mod = pytest.importorskip("moto.server", reason='the S3 tests need moto: pip install -e ".[dev]"')


@pytest.fixture(scope="session", name="moto_server")
def moto_server_fixture() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = moto_server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(name="s3_bucket")
def s3_bucket_fixture(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    pafs.S3FileSystem(
        endpoint_override=moto_server, region="us-east-1", allow_bucket_creation=True
    ).create_dir(bucket)
    return bucket


def object_names(fs: Any, root: str) -> list[str]:
    """Every object under ``root`` (a bucket/prefix path), relative to it, sorted."""
    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    return sorted(i.path[len(root) + 1 :] for i in fs.get_file_info(selector) if i.type == pafs.FileType.File)
