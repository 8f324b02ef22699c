"""Run the installed aiohttp's own FileResponse and static-route tests against ours.

Downloads the aiohttp sdist of the installed version into a temporary directory, runs
its ``tests/test_web_sendfile_functional.py`` and ``tests/test_web_urldispatcher.py``
with ``conftest.py`` from here (web.FileResponse is ConditionalFileResponse and
router.add_static is add_static), and checks
the outcome against ``expected-differences.txt``: every test not listed there must pass,
and every test listed must fail.  Nothing of the sdist is kept.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

from aiohttp_conditional._clock import FS_LAG_NS
from aiohttp_conditional._preconditions import STABLE_AFTER_NS

HERE = Path(__file__).parent
TEST_MODULES = ("test_web_sendfile_functional.py", "test_web_urldispatcher.py")


def expected_failures() -> dict[str, str]:
    """Read test id -> reason from the committed list."""
    expected = {}
    for line in (HERE / "expected-differences.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            test_id, _, reason = line.partition("  ")
            expected[test_id.strip()] = reason.strip()
    return expected


def fetch_tests(aiohttp_version: str, work: Path) -> Path:
    """Download and unpack the sdist; return its tests directory, with our conftest."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"aiohttp=={aiohttp_version}",
            "-d",
            str(work),
        ],
        check=True,
    )
    (sdist,) = work.glob("aiohttp-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(work, filter="data")
    tests = work / f"aiohttp-{aiohttp_version}" / "tests"
    # Ours stands in for aiohttp's conftest, which needs aiohttp's whole test toolchain.
    shutil.copy2(HERE / "conftest.py", tests / "conftest.py")
    (tests / "pytest.ini").write_text("[pytest]\n")
    # Unpacked files are new (ctime now): let them stand for the second after which
    # ConditionalFileResponse issues validators, so outcomes do not hang on timing.
    time.sleep((STABLE_AFTER_NS + FS_LAG_NS) / 1e9 + 0.1)
    return tests


def outcomes(report: Path) -> dict[str, str]:
    """Map each test id of a JUnit XML report to passed, failed or skipped."""
    results = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test_id = (
            f"{case.get('classname', '').rpartition('.')[2]}.py::{case.get('name')}"
        )
        if case.find("failure") is not None or case.find("error") is not None:
            results[test_id] = "failed"
        elif case.find("skipped") is not None:
            results[test_id] = "skipped"
        else:
            results[test_id] = "passed"
    return results


PYTEST_OPTIONS = (
    "-q",
    "-p",
    "no:cacheprovider",
    # aiohttp's tests use aiohttp.pytest_plugin (our conftest loads it), not these.
    "-p",
    "no:aiohttp",
    "-p",
    "no:asyncio",
    "-p",
    "no:hypothesispytest",
    "-o",
    "junit_family=xunit1",
)


def main() -> int:
    aiohttp_version = version("aiohttp")
    expected = expected_failures()
    with tempfile.TemporaryDirectory(prefix="aiohttp-upstream-") as tmp:
        tests = fetch_tests(aiohttp_version, Path(tmp))
        report = Path(tmp) / "report.xml"
        ran = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                *PYTEST_OPTIONS,
                f"--junitxml={report}",
                "--rootdir",
                str(tests),
                "-c",
                str(tests / "pytest.ini"),
                *TEST_MODULES,
            ],
            cwd=tests,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        results = outcomes(report) if report.exists() else {}
    failed = {test_id for test_id, outcome in results.items() if outcome == "failed"}
    unexpected = sorted(failed - expected.keys())
    fixed = sorted(test_id for test_id in expected if results.get(test_id) == "passed")
    missing = sorted(test_id for test_id in expected if test_id not in results)
    passed = sum(1 for outcome in results.values() if outcome == "passed")
    skipped = sum(1 for outcome in results.values() if outcome == "skipped")
    if unexpected or fixed or missing or not results:
        # Only then is aiohttp's own report worth reading; a passing run stays short.
        print(ran.stdout)
    print(
        f"aiohttp {aiohttp_version}'s own file tests against ours: "
        f"{passed} passed, {len(failed)} failed as expected differences "
        f"({len(expected)} listed), {skipped} skipped"
    )
    for title, ids in (
        ("failed but not listed as an expected difference", unexpected),
        ("listed as an expected difference but passed", fixed),
        ("listed as an expected difference but not run", missing),
    ):
        for test_id in ids:
            print(f"  {title}: {test_id}")
    return 1 if unexpected or fixed or missing or not results else 0


if __name__ == "__main__":
    sys.exit(main())
