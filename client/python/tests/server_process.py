"""Runs the real TypeScript StatePersister server as a child process for the tests."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[3]
STARTUP_SECONDS = 60


class ServerProcess:
    """The compiled server (``node server/dist/main.js``, as ``npm start`` runs it) on loopback, logging JSON lines on stderr.

    The first start picks a free port; restarts listen on the same one, so clients that
    keep their channel see the same server come back.
    """

    def __init__(self, store_url: str, *, init: bool = True, extra_args: tuple[str, ...] = ()):
        self.store_url = store_url
        self.init = init
        self.extra_args = extra_args
        self.port = 0
        self.log: list[str] = []
        self._process: Optional[subprocess.Popen] = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        command = [
            "node",
            "server/dist/main.js",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--store",
            self.store_url,
            *(["--init"] if self.init else []),
            *self.extra_args,
        ]
        self._process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started = threading.Event()
        threading.Thread(target=self._read_log, args=(self._process, started), daemon=True).start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not started.wait(0.1):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start: {' '.join(command)}\n" + "\n".join(self.log))
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Stops the server at once (SIGKILL): no drain, connections just break."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def pause(self) -> None:
        """Freezes the server (SIGSTOP): connections stay open, nothing is answered until resume()."""
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _read_log(self, process: subprocess.Popen, started: threading.Event) -> None:
        # Drains stderr for the whole life of the process so the pipe never fills up.
        for line in process.stderr:
            self.log.append(line.rstrip())
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "started":
                self.port = int(event["port"])
                started.set()
