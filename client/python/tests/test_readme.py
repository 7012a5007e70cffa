"""Every ```python example of client/python/README.md runs: in the README's order, in one
script (as a reader would type them into one session, each block building on the ones before),
against a fresh server. The examples talk to port 50051; the script talks to the test server's
port instead. A block that cannot run here says so in its fence (```python not-run: <why>).
The bash blocks are the install and development commands that run-tests.sh runs itself, and the
text blocks show messages, not code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from server_process import ServerProcess

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)


def examples() -> list[tuple[str, str, str, int]]:
    """(language, what follows it in the fence, code, line) of every fenced block."""
    text = README.read_text(encoding="utf-8")
    return [
        (match[1], match[2].strip(), match[3], text.count("\n", 0, match.start()) + 1)
        for match in FENCE.finditer(text)
    ]


def test_every_block_is_python_bash_or_text_and_a_skipped_one_says_why():
    for language, rest, _, line in examples():
        assert language in ("python", "bash", "text"), f"README.md line {line}: ```{language} is run by nothing"
        assert rest == "" or re.fullmatch(r"not-run: \S.*", rest), f"README.md line {line}: ```{language} {rest}"


def test_the_python_examples_run_in_order(tmp_path):
    blocks = [(code, line) for language, rest, code, line in examples() if language == "python" and not rest]
    assert len(blocks) >= 9, "the README's Python examples went missing"
    server = ServerProcess(f"sqlite:{tmp_path / 'state.db'}").start()
    try:
        script = "\n".join(f"# README.md line {line}\n{code.replace('50051', str(server.port))}" for code, line in blocks)
        (tmp_path / "readme_examples.py").write_text(script, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "readme_examples.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
    finally:
        server.stop()
    assert result.returncode == 0, f"{result.stderr[-4000:]}\n(script: {tmp_path / 'readme_examples.py'})"
