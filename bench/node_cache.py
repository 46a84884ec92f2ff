"""What bounding a Ray node's artifact cache costs an instance start: one `bound` pass
(`modelhost.store.cache_bound`) over a cache of N entries, same run.

    python bench/node_cache.py [--entries 10,100,1000] [--rounds 5]

For each N: builds N small entries with the artifact store (as a node does), then times
`bound` when everything fits (the usual start: sizes are cached, each lease probed), the
first pass (every entry sized), and a pass that evicts half the entries. Medians over
`--rounds` in ms. The machine is shared: read the figures as orders of magnitude.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _machine import format_machine_info, machine_info
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.cache_bound import bound

ENTRY_BYTES = 4096


def _build(root: Path, sources: Path, count: int) -> None:
    store = ArtifactStore.from_values(root)
    sources.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        path = sources / f"m{i}.bin"
        path.write_bytes(i.to_bytes(8, "big") * (ENTRY_BYTES // 8))
        store.fetch(str(path))


def _ms(root: Path, budget_bytes: int) -> float:
    started = time.perf_counter()
    bound(root, budget_bytes)
    return (time.perf_counter() - started) * 1000


def _one(count: int, rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {"first": [], "fits": [], "evict half": []}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="mh-bench-cache-") as tmp:
            root, sources = Path(tmp) / "cache", Path(tmp) / "sources"
            _build(root, sources, count)
            times["first"].append(_ms(root, 10**15))
            times["fits"].append(_ms(root, 10**15))
            times["evict half"].append(_ms(root, count * ENTRY_BYTES // 2))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", default="10,100,1000", help="cache sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(format_machine_info(machine_info()))
    print(f"{'entries':>8} {'fits ms':>9} {'first ms':>9} {'evict half ms':>14}")
    for count in (int(c) for c in args.entries.split(",")):
        r = _one(count, args.rounds)
        print(f"{count:>8} {r['fits']:>9.2f} {r['first']:>9.2f} {r['evict half']:>14.2f}")


if __name__ == "__main__":
    main()
