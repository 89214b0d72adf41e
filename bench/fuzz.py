"""Fuzz a started collector from its own OpenAPI document and count what comes back.

Starts ``advertisex serve`` (collector, Firehose API, tracking endpoints, console API) on a
free port over a temporary data directory, has schemathesis send ``--examples`` generated
requests (valid and invalid) to every operation, checks each answer (never a 5xx; status,
content type and body as documented), and prints the requests sent, the answers by status,
the 5xx seen and any failed check.

    python bench/fuzz.py [--examples 200]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _args import positive

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests" / "collector")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=positive, default=200, help="requests per operation")
    args = parser.parse_args()

    import httpx
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    from tests.collector.fuzzing import fuzz

    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "advertisex.toml"
        config.write_text("")
        port = _free_port()
        env = dict(os.environ, ADVERTISEX_DATA_DIR=f"{scratch}/data", ADVERTISEX_CONFIG=str(config))
        server = subprocess.Popen(
            [sys.executable, "-m", "advertisex.cli.app", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait(httpx, f"{url}/healthz")
            started = time.perf_counter()
            report = fuzz(
                f"{url}/openapi.json",
                max_examples=args.examples,
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            )
            seconds = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(60)
    load = os.getloadavg()
    print(f"operations fuzzed:  {len(report.requests)}")
    print(f"requests sent:      {report.total:,} in {seconds:.0f} s")
    print(f"answers by status:  {dict(sorted(report.statuses.items()))}")
    print(f"5xx answers:        {report.server_errors}")
    print(f"failed checks:      {len(report.failures)}")
    for failure in report.failures[:10]:
        print(f"  {failure.splitlines()[0]}")
    print(f"machine load (1/5/15 min): {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    sys.exit(1 if report.failures or report.server_errors else 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(httpx: object, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:  # type: ignore[attr-defined]
                return
        except Exception:
            pass
        time.sleep(0.1)
    sys.exit(f"the collector did not start at {url}")


if __name__ == "__main__":
    main()
