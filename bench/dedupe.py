"""Dedupe state: time and peak memory to check a batch against N committed events.

The dedupe state is the committed (key, payload hash) pairs within the horizon,
read per batch from the curated table. This measures ``find_duplicates`` — the code
the processor runs — for a 1 M-event batch against 10 M and 50 M committed keys,
each in a fresh process so peak RSS is its own.

    python bench/dedupe.py [--committed 50000000] [--batch 1000000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

from _args import positive


def child(committed: int, batch: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from advertisex.kernels.dedupe import find_duplicates

    def keys(start: int, n: int) -> pa.Array:
        # Realistic ids: "imp-" + 16 hex digits, as the generator and ad servers write them.
        numbers = pa.array(np.arange(start, start + n, dtype=np.uint64) * 2654435761 % (1 << 63))
        return pc.binary_join_element_wise("imp-", pc.cast(numbers, pa.string()), "")

    seen_keys = keys(0, committed)
    seen_hashes = pc.utf8_slice_codeunits(seen_keys, 4, 20)
    # A batch with 0.5 % repeats of committed events, the rest new.
    repeats = int(batch * 0.005)
    batch_keys = pa.concat_arrays(
        [keys(committed - repeats, repeats), keys(committed, batch - repeats)]
    )
    batch_hashes = pc.utf8_slice_codeunits(batch_keys, 4, 20)
    state_mb = (seen_keys.nbytes + seen_hashes.nbytes) / 2**20
    started = time.perf_counter()
    found = find_duplicates(batch_keys, batch_hashes, seen_keys, seen_hashes)
    seconds = time.perf_counter() - started
    assert found.count == repeats, (found.count, repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{committed:>11,} committed  batch {batch:,}: {seconds:.2f} s, state {state_mb:,.0f} MiB in Arrow, "
        f"peak RSS {peak:,.0f} MiB, duplicates found {found.count:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--committed", type=positive, nargs="*", default=[10_000_000, 50_000_000])
    parser.add_argument("--batch", type=positive, default=1_000_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.committed[0], args.batch)
        return
    for committed in args.committed:
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--committed",
                str(committed),
                "--batch",
                str(args.batch),
            ],
            check=True,
        )


if __name__ == "__main__":
    main()
