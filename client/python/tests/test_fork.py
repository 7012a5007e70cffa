"""GrpcStatePersister in forked children: each check runs in a fresh Python process (see
forked_children.py for why), so it does not depend on what other tests left in this one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import forked_children

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


#: grpcio as installed, and with the transport the README's "Lower latency" paragraph suggests.
TRANSPORTS = {"event-engine": {}, "iomgr": {"GRPC_EXPERIMENTS": "-event_engine_client"}}


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
@pytest.mark.parametrize("check", sorted(forked_children.CHECKS))
def test_a_forked_child_opens_its_own_channel(server, partition, check, transport):
    script = Path(forked_children.__file__)
    result = subprocess.run(
        [sys.executable, str(script), check, str(server.port), partition],
        env={**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "1", **TRANSPORTS[transport]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
