"""The bids' Avro decode: the compiled reader against polars-avro, alternated in one process.

Frames every bid file of ``bench/process.py``'s data set with ``formats.avrofmt.frame_avro``
(what a decoder worker runs for each bid segment), once with the compiled reader
(``native/avro.c``, blocks inflated by ISA-L) and once with it turned off (polars-avro's
reader, zlib's inflate), ``--rounds`` times each, alternated; prints each round's CPU and
the medians per record. Both give the same table (checked on the first round). Then the
collector's framing of one request of 500 bids (its strict check and the decoder), with
and without the compiled reader. Then a small container (a request of 20 bids: what a
collector lands for each request) framed alone, as a micro-batch of one request frames it,
and in a group of 64 (``frame_avro_each``, as a backlog's small segments are).

    python bench/avro.py [--events 2000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _args import positive
from _checkout import use_this_checkout
from process import _dataset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=positive, default=2_000_000)
    parser.add_argument("--rounds", type=positive, default=5)
    args = parser.parse_args()
    use_this_checkout()
    from advertisex import native
    from advertisex.formats import avrofmt

    if not native.available():
        sys.exit("the compiled helpers were not built: run `make install`")
    files = sorted((_dataset(args.events) / "bids").glob("*.avro"))
    data = [f.read_bytes() for f in files]

    def frame_all(compiled: bool) -> tuple[float, int, list]:
        with _compiled_reader(compiled):
            started = time.process_time()
            tables = [avrofmt.frame_avro(d) for d in data]
            return time.process_time() - started, sum(t.num_rows for t in tables), tables

    seconds: dict[str, list[float]] = {"compiled": [], "polars-avro": []}
    records = 0
    for round_ in range(args.rounds):
        order = [("compiled", True), ("polars-avro", False)]
        if round_ % 2:
            order.reverse()
        results = {}
        for name, compiled in order:
            cpu, records, tables = frame_all(compiled)
            seconds[name].append(cpu)
            results[name] = tables
        if round_ == 0:
            same = all(
                a.equals(b)
                for a, b in zip(results["compiled"], results["polars-avro"], strict=True)
            )
            print(f"{len(files)} files, {records:,} records; the same tables: {same}")
        print(
            f"round {round_ + 1}: compiled {seconds['compiled'][-1]:.3f} s  "
            f"polars-avro {seconds['polars-avro'][-1]:.3f} s (CPU)"
        )
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"{name:<12} median {median:.3f} s of CPU  {median / records * 1e6:.2f} µs/record")
    _collector_request(data[0], args.rounds)
    _small_container(data[0], args.rounds)


@contextlib.contextmanager
def _compiled_reader(on: bool) -> Iterator[None]:
    """The compiled reader as installed (``on``), or every schema left to polars-avro and
    fastavro's check, as before it (no schema is the compiled reader's)."""
    from advertisex.formats import avrofmt

    fields = avrofmt._native_fields
    avrofmt._PLANS.clear()  # each schema's plan (its fields among them) is made again
    if not on:
        avrofmt._native_fields = lambda _: None  # type: ignore[assignment]
    try:
        yield
    finally:
        avrofmt._native_fields = fields
        avrofmt._PLANS.clear()


def _collector_request(container: bytes, rounds: int) -> None:
    """The collector's framing of one request of 500 bids (its strict check, then the
    processor's decoder), with the compiled reader and without it (every schema left to
    fastavro's check and polars-avro, as before it)."""
    import fastavro

    from advertisex.collector.framing import frame_avro

    header = fastavro.block_reader(io.BytesIO(container))
    records = list(itertools.islice(fastavro.reader(io.BytesIO(container)), 500))
    body = io.BytesIO()
    fastavro.writer(body, fastavro.parse_schema(header.writer_schema), records, "deflate")
    request = body.getvalue()
    spent: dict[str, list[float]] = {"compiled": [], "without": []}
    for round_ in range(rounds * 10):
        compiled = round_ % 2 == 0
        with _compiled_reader(compiled):
            started = time.process_time()
            frame_avro(request)
            spent["compiled" if compiled else "without"].append(time.process_time() - started)
    print(
        f"the collector's framing of a request of 500 bids ({len(request):,} bytes): "
        + ", ".join(f"{k} {statistics.median(v) * 1e3:.2f} ms" for k, v in spent.items())
        + " of CPU (medians)"
    )


def _small_container(container: bytes, rounds: int) -> None:
    """Milliseconds of CPU a container of 20 bids costs framed alone and in a group of 64
    (the best of ``rounds`` rounds)."""
    import fastavro

    from advertisex.formats.avrofmt import frame_avro, frame_avro_each

    header = fastavro.block_reader(io.BytesIO(container))
    records = list(itertools.islice(fastavro.reader(io.BytesIO(container)), 20))
    body = io.BytesIO()
    fastavro.writer(body, fastavro.parse_schema(header.writer_schema), records, header.codec)
    small = body.getvalue()
    frame_avro(small)  # the schema's plan made once, as for a collector's every request after
    alone, grouped = [], []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(1000):
            frame_avro(small)
        alone.append((time.process_time() - started) / 1000)
        started = time.process_time()
        for _ in range(16):
            frame_avro_each([small] * 64)
        grouped.append((time.process_time() - started) / (16 * 64))
    print(
        f"a container of 20 bids ({len(small):,} bytes) framed alone {min(alone) * 1e3:.3f} ms, "
        f"in a group of 64 {min(grouped) * 1e3:.3f} ms of CPU each (best of {rounds})"
    )


if __name__ == "__main__":
    main()
