"""Compare every implementation on every scenario without asv: python -m benchmarks.compare.

One server process serves all implementations; a lean keep-alive client per
implementation times batches of requests, interleaved (each repetition runs every
scenario of every implementation once) so that a noisy neighbour hurts all alike.  The
table gives each median time per request and its speed relative to upstream (the
handler for handlers, add_static for add_static) and to the floor, a bare 304 with no
disk access; above 1.00x is faster.  Then the server's memory and open descriptors are
checked over a long run of mixed requests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ._common import (
    BASELINE,
    IMPLS,
    SCENARIOS,
    Client,
    Server,
    applies,
    build_request,
    make_files,
    validators_of,
)


def measure_batches(
    server: Server, repetitions: int, batch: int
) -> dict[tuple[str, str], list[float]]:
    """Return seconds per request of each (scenario, impl), one value per repetition."""
    clients = {impl: Client(server.port) for impl in IMPLS}
    requests = {}
    for impl, client in clients.items():
        validators = validators_of(client, impl)
        for scenario in SCENARIOS:
            if applies(impl, scenario):
                raw = build_request(impl, scenario, validators)
                requests[scenario, impl] = (client, raw, scenario != "head")
    results: dict[tuple[str, str], list[float]] = {key: [] for key in requests}
    for _ in range(repetitions):
        for (scenario, impl), (client, raw, has_body) in requests.items():
            count = max(batch // 10, 5) if scenario == "200-10MiB" else batch
            client.request(raw, has_body)  # warm
            start = time.perf_counter()
            for _ in range(count):
                client.request(raw, has_body)
            results[scenario, impl].append((time.perf_counter() - start) / count)
    for client in clients.values():
        client.close()
    return results


def check_memory(server: Server, total: int) -> list[str]:
    """Run ``total`` mixed requests at our implementations; report RSS and fds."""
    lines = []
    for impl in ("ours-handler", "ours-static"):
        client = Client(server.port)
        validators = validators_of(client, impl)
        mix = [
            (build_request(impl, scenario, validators), True)
            for scenario in ("304-if-none-match", "200-10KiB", "206", "412")
        ]
        for raw, has_body in mix * 250:  # warm up caches and pools first
            client.request(raw, has_body)
        rss_before, fds_before = server.rss_and_fds()
        for index in range(total // 2):
            raw, has_body = mix[index % len(mix)]
            client.request(raw, has_body)
        rss_after, fds_after = server.rss_and_fds()
        client.close()
        lines.append(
            f"{impl:25} {total // 2:>7} requests: RSS {rss_before} -> {rss_after} KiB "
            f"({rss_after - rss_before:+d}), open fds {fds_before} -> {fds_after}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare")
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--batch", type=int, default=200, help="requests per timing")
    parser.add_argument("--memory-requests", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        server = Server(make_files(Path(tmp)))
        try:
            results = measure_batches(server, args.repetitions, args.batch)
            memory = check_memory(server, args.memory_requests)
        finally:
            server.stop()
    medians = {key: statistics.median(values) for key, values in results.items()}
    print(
        f"{'scenario':23} {'implementation':25} {'median':>10} "
        f"{'vs upstream':>12} {'vs floor':>9}"
    )
    for scenario in SCENARIOS:
        floor = medians.get((scenario, "floor"))
        for impl in IMPLS:
            if (scenario, impl) not in medians:
                continue
            median = medians[scenario, impl]
            baseline = medians[scenario, BASELINE[impl]]
            versus_floor = f"{floor / median:8.2f}x" if floor else f"{'':9}"
            print(
                f"{scenario:23} {impl:25} {median * 1e6:8.1f}us "
                f"{baseline / median:11.2f}x {versus_floor}"
            )
    print()
    print("\n".join(memory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
