"""The sharing and pipeline tests again in a Python started with
``GRPC_EXPERIMENTS=-event_engine_client``: grpcio's older iomgr transport instead of its
EventEngine, which the README's "Lower latency" paragraph suggests. grpcio reads the setting when
it starts, so they run in a pytest process of their own (the fork checks run under it in
test_fork.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_fork import TRANSPORTS

PROJECT = Path(__file__).resolve().parents[1]
FILES = ["tests/test_sharing.py", "tests/test_pipeline.py", "tests/test_async_pipeline.py"]


def test_sharing_and_pipelines_under_the_iomgr_transport():
    # bin/pytest, not `python -m pytest`, which would put the project on sys.path (run-tests.sh).
    pytest = Path(sys.executable).with_name("pytest")
    result = subprocess.run(
        [str(pytest), "-q", "-p", "no:cacheprovider", *FILES],
        cwd=PROJECT,
        env={**os.environ, **TRANSPORTS["iomgr"]},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert " passed" in result.stdout and " skipped" not in result.stdout, result.stdout[-2000:]
