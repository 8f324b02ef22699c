"""Check the CLI server with REDbot (a linter for HTTP that no one here wrote).

Serves a directory with ``python -m aiohttp_conditional`` on loopback and has REDbot
check a 200, a compressed variant, a 304 and a range response.  Fails on any note of
level "bad", and on any "warning" not explained in ``warnings.txt`` beside this file (or
explained there but no longer given).
"""

from __future__ import annotations

import gzip
import sys
import tempfile
import time
import urllib.request
from configparser import ConfigParser
from pathlib import Path

import thor
from httplint.note import levels
from redbot.resource import HttpResource

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent))

from benchmarks.load import CliServer  # noqa: E402


def run_checks(
    checks: dict[str, tuple[str, list[tuple[str, str]]]],
) -> dict[str, tuple[int, list[tuple[str, str, str]]]]:
    """Run REDbot on each (url, headers) at once; return each status and its notes."""
    config = ConfigParser()
    config.read_dict({"redbot": {"enable_local_access": "True"}})
    resources = {}
    pending = set(checks)
    for name, (url, headers) in checks.items():
        resource = HttpResource(config["redbot"], descend=False)
        resource.set_request(url, headers=headers)

        def check_done(name: str = name) -> None:
            pending.discard(name)
            if not pending:
                thor.stop()

        # thor finds the listener by the function's name, as its own decorator does.
        thor.events.on(resource)(check_done)

        resources[name] = resource
    for resource in resources.values():
        resource.check()
    thor.run()
    results = {}
    for name, resource in resources.items():
        found = []
        for note in resource.response.notes:
            for each in (note, *note.subnotes):
                level = (
                    each.level.value if isinstance(each.level, levels) else each.level
                )
                found.append((str(level), type(each).__name__, str(each.summary)))
        results[name] = (int(resource.response.status_code or 0), found)
    return results


def main() -> int:
    explained = {}
    for line in (HERE / "warnings.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, why = line.partition("  ")
            explained[name.strip()] = why.strip()
    with tempfile.TemporaryDirectory(prefix="redbot-") as tmp:
        root = Path(tmp)
        text = b"".join(
            b"line %d of a text worth compressing\n" % n for n in range(2000)
        )
        (root / "page.txt").write_bytes(text)
        (root / "page.txt.gz").write_bytes(gzip.compress(text))
        time.sleep(1.1)  # old enough for validators
        server = CliServer(root)
        url = f"http://127.0.0.1:{server.port}/page.txt"
        try:
            with urllib.request.urlopen(url) as resp:
                etag = resp.headers["ETag"]
            results = run_checks(
                {
                    "200": (url, []),
                    "gzip variant": (url, [("Accept-Encoding", "gzip")]),
                    "304": (url, [("If-None-Match", etag)]),
                    "range": (url, [("Range", "bytes=0-99")]),
                }
            )
        finally:
            server.stop()
    failed = False
    seen_warnings = set()
    for name, (status, found) in results.items():
        print(f"{name}: {status}")
        for level, note, summary in found:
            print(f"  {level:8} {note}: {summary}")
            if level == "bad":
                failed = True
                print("    ^ a bad note")
            elif level == "warning":
                seen_warnings.add(note)
                if note not in explained:
                    failed = True
                    print(f"    ^ a warning not explained in {HERE / 'warnings.txt'}")
    for note in sorted(explained.keys() - seen_warnings):
        failed = True
        print(f"explained in warnings.txt but no longer given: {note}")
    print(
        "REDbot: "
        + ("findings above" if failed else "no bad note, every warning explained")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
