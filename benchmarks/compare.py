"""Compare every implementation on every scenario without asv: python -m benchmarks.compare.

One server process serves all implementations; a lean keep-alive client per
implementation times batches of requests, interleaved (each repetition runs every
scenario of every implementation once) so that a noisy neighbour hurts all alike.  The
table gives each median time per request and its speed relative to upstream (the
handler for handlers, add_static for add_static) and to the floor, a bare 304 with no
disk access; above 1.00x is faster.  A second table gives the throughput with several
connections at once (as ``wrk -c4`` would), the server pinned to one core and the
client to the other.  Then the server's memory and open descriptors are checked over a
long run of mixed requests.
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
    Load,
    Server,
    applies,
    build_request,
    make_files,
    pin,
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


def measure_throughput(
    server: Server, repetitions: int, connections: int, seconds: float
) -> dict[tuple[str, str], list[float]]:
    """Return responses a second of each (scenario, impl), one value per repetition."""
    requests = {}
    for impl in IMPLS:
        client = Client(server.port)
        validators = validators_of(client, impl)
        client.close()
        for scenario in SCENARIOS:
            if applies(impl, scenario):
                raw = build_request(impl, scenario, validators)
                requests[scenario, impl] = (raw, scenario != "head")
    results: dict[tuple[str, str], list[float]] = {key: [] for key in requests}
    load = Load(server.port, connections)
    try:
        for _ in range(repetitions):
            for (scenario, impl), (raw, has_body) in requests.items():
                results[scenario, impl].append(load.run(raw, has_body, seconds))
    finally:
        load.close()
    return results


LEGEND = """\
How to read the tables:
  vs upstream  this implementation's speed over upstream's of the same kind, measured
               in this run (a handler against FileResponse in a handler, add_static
               against router.add_static): 1.62x is 1.62 times as fast (less time a
               request, or more requests a second); above 1.00x is faster.
  vs floor     its speed over the floor, a handler that answers 304 without looking
               at any file: the most any file response could do on this machine, so
               this is at most about 1.00x; 0.80x takes 1.25 times the floor's time.
  ours-*       aiohttp-conditional; *-executor always takes the executor job, and
               *-content-etag makes its ETag from the file's bytes.
The machine may be busy: compare ratios from one run, not times from two.
"""


def print_table(
    title: str, medians: dict[tuple[str, str], float], unit: str, faster: str
) -> None:
    """Print one row per (scenario, impl) with its ratios to upstream and the floor."""
    print(title)
    print(
        f"{'scenario':23} {'implementation':25} {unit:>10} "
        f"{'vs upstream':>12} {'vs floor':>9}"
    )
    for scenario in SCENARIOS:
        floor = medians.get((scenario, "floor"))
        for impl in IMPLS:
            if (scenario, impl) not in medians:
                continue
            value = medians[scenario, impl]
            baseline = medians[scenario, BASELINE[impl]]
            # Above 1.00x is better: less time, or more responses a second.
            ratio = (baseline / value) if faster == "less" else (value / baseline)
            versus_floor = ""
            if floor:
                versus_floor = (
                    f"{(floor / value) if faster == 'less' else (value / floor):8.2f}x"
                )
            shown = f"{value * 1e6:8.1f}us" if faster == "less" else f"{value:10.0f}"
            print(f"{scenario:23} {impl:25} {shown} {ratio:11.2f}x {versus_floor}")
    print()


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
    parser.add_argument(
        "--connections", type=int, default=4, help="connections for the throughput"
    )
    parser.add_argument(
        "--seconds", type=float, default=0.25, help="seconds per throughput sample"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        server = Server(make_files(Path(tmp)))
        pin(server.process.pid)
        try:
            latency = measure_batches(server, args.repetitions, args.batch)
            throughput = measure_throughput(
                server, args.repetitions, args.connections, args.seconds
            )
            memory = check_memory(server, args.memory_requests)
        finally:
            server.stop()
    print(LEGEND)
    print_table(
        "Latency: one connection, median time per request",
        {key: statistics.median(values) for key, values in latency.items()},
        "median",
        "less",
    )
    print_table(
        f"Throughput: {args.connections} connections, median responses a second",
        {key: statistics.median(values) for key, values in throughput.items()},
        "per second",
        "more",
    )
    print(
        f"Memory: resident size and open descriptors of the server before and after "
        f"{args.memory_requests // 2:,} mixed requests (304, 200, 206, 412) to each "
        "of ours, after 1,000 to warm its caches up"
    )
    print("\n".join(memory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
