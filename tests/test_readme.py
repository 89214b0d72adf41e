"""The README's tour of the CLI, run as written on the demo's lake.

Every command in the tour's code blocks runs from a fresh folder holding the demo's lake,
in order, and must succeed without a traceback. The few departures are listed here:
sizes and durations are cut to keep the test cheap, the collector port is a free one,
``advertisex up`` runs in the background for the rest of its block, and lines naming a
placeholder (a ``$VARIABLE`` the reader fills in) are skipped. Afterwards the demo runs
again on the same lake and must still match its truth.json.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.collector.collector_helpers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CHEAPER = {"--events": {"200000": "10000"}, "--duration": {"30": "2"}, "--rate": {"10000": "300"}}


def tour_blocks(heading: str = "A tour of the CLI") -> list[list[list[str]]]:
    """A README section's code blocks, each as its command lines split into words."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    blocks = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        commands = []
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            while "&&" in words:  # a && b: two commands, in order
                cut = words.index("&&")
                commands.append(words[:cut])
                words = words[cut + 1 :]
            commands.append(words)
        blocks.append([w for w in commands if w and w[0] in ("advertisex", "curl", "export")])
    return blocks


def test_the_tour_reads_as_commands():
    blocks = tour_blocks()
    verbs = {words[1] for block in blocks for words in block if words[0] == "advertisex"}
    assert {
        "generate",
        "ingest",
        "process",
        "replay",
        "up",
        "query",
        "report",
        "quarantine",
    } <= verbs
    assert {"dims", "status", "monitor", "config", "maintain", "forget"} <= verbs


class Tour:
    """Runs the tour's commands in ``folder``: advertisex in this process (as its console
    script would: ``main()``), ``curl`` and ``advertisex up`` as processes of their own."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.folder = folder
        self.ports = {"8080": str(free_port()), "8081": str(free_port())}  # collector, console
        self.monkeypatch = monkeypatch
        for name in [n for n in os.environ if n.startswith("ADVERTISEX_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("COLUMNS", "160")
        monkeypatch.setenv("ADVERTISEX_CONFIG", "")
        monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        monkeypatch.chdir(folder)
        self.outputs: dict[str, str] = {}

    def words(self, words: list[str]) -> list[str]:
        out = []
        for i, word in enumerate(words):
            word = CHEAPER.get(words[i - 1], {}).get(word, word) if i else word
            for written, port in self.ports.items():
                word = word.replace(written, port)
            out.append(word)
        return out

    def run(self, words: list[str]) -> str:
        words = self.words(words)
        line = " ".join(words)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            self.monkeypatch.setenv(name, value)
            return ""
        if words[0] == "advertisex":
            code, said = self._main(words)
        else:
            result = subprocess.run(words, capture_output=True, text=True, timeout=120)
            code, said = result.returncode, result.stdout + result.stderr
        assert "Traceback" not in said, f"{line}\n{said}"
        assert code == 0, f"{line} exited {code}:\n{said}"
        self.outputs[line] = said
        return said

    def _main(self, words: list[str]) -> tuple[int, str]:
        from advertisex.cli.app import main

        out, err = io.StringIO(), io.StringIO()
        self.monkeypatch.setattr(sys, "argv", words)
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
        return code, out.getvalue() + err.getvalue()

    @staticmethod
    def placeholder(words: list[str]) -> bool:
        return any("$" in word for word in words)

    def blocks(self) -> Iterator[list[list[str]]]:
        yield from tour_blocks()
        yield from tour_blocks("The web console and read API")

    def server(self, words: list[str]) -> subprocess.Popen[str]:
        """``advertisex up`` or ``advertisex console`` in the background, once it answers."""
        words = self.words(words)
        ready = f"http://127.0.0.1:{words[words.index('--port') + 1]}/" + (
            "readyz" if words[1] == "up" else "api/v1/status"
        )
        server = subprocess.Popen(
            words, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if httpx.get(ready, timeout=1).status_code == 200:
                    return server
            except httpx.TransportError:
                time.sleep(0.3)
        server.kill()
        raise AssertionError(f"{words[1]} did not start: {server.communicate()[1]}")


def stop(server: subprocess.Popen[str]) -> None:
    server.send_signal(signal.SIGINT)
    try:
        _, err = server.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        server.kill()
        raise
    assert "Traceback" not in err, err
    assert server.returncode == 0, err


def _not_across_midnight(budget_seconds: int = 180) -> None:
    """The tour's "today" (the demo's traffic, ``replay --from today``) must be one UTC day:
    started within ``budget_seconds`` of midnight, wait for the new day first."""
    now = datetime.now(UTC)
    left = 86_400 - (now.hour * 3600 + now.minute * 60 + now.second)
    if left < budget_seconds:
        time.sleep(left + 1)


def test_the_readme_tour_works_as_written_on_the_demos_lake(tmp_path, monkeypatch):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    _not_across_midnight()
    tour = Tour(tmp_path, monkeypatch)
    first = tour.run(["advertisex", "demo", "--events", "10000"])
    assert "every table matches truth.json" in first

    ran = 0
    for block in tour.blocks():
        server = None
        try:
            for words in block:
                if tour.placeholder(words):
                    continue
                if words[:2] in (["advertisex", "up"], ["advertisex", "console"]):
                    server = tour.server(words)
                else:
                    tour.run(words)
                ran += 1
        finally:
            if server is not None:
                stop(server)
    assert ran >= 20

    said = tour.outputs
    rebuilt = next(v for k, v in said.items() if k.startswith("advertisex replay --from today"))
    assert re.search(r"replaying [1-9]\d* batch(es)?", rebuilt), rebuilt  # today's: the tour's
    shown = next(v for k, v in said.items() if "quarantine show --reason unknown_campaign" in k)
    assert "cmp-021" in shown  # the campaign launched after the dims export
    replayed = next(
        v for k, v in said.items() if "quarantine replay --reason unknown_campaign" in k
    )
    assert re.search(r"[1-9][\d,]* records left the quarantine", replayed), replayed
    forgot = next(v for k, v in said.items() if k.startswith("advertisex forget --from-file"))
    assert "forgot 2 users" in forgot, forgot  # the users of examples/imps.ndjson, sent by curl
    campaigns = next(v for k, v in said.items() if "/api/v1/reports/campaigns?" in k)
    assert '"campaign_id":"cmp-0' in campaigns.replace(" ", ""), campaigns[:300]
    counted = next(v for k, v in said.items() if "/api/v1/query" in k)
    assert re.search(r'"n":\s*[1-9]', counted), counted
    monitored = next(v for k, v in said.items() if k.startswith("advertisex monitor --once"))
    assert "SpendOffPace" not in monitored  # budgets loaded today are judged from tomorrow

    again = tour.run(["advertisex", "demo", "--events", "10000"])
    assert "every table matches truth.json" in again and "MISMATCH" not in again
