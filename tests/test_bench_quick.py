"""Every ``bench/bench_*.py`` runs in ``--quick`` mode and prints well-formed result lines.

Each script runs in a subprocess (as ``make bench`` would, with this environment: PostgreSQL and
Redis come from ``DASHTAM_TEST_POSTGRES_URL`` / ``DASHTAM_TEST_REDIS_URL``). It must exit 0,
and every JSON line it prints must carry the keys of performance.md (``scenario``, ``value``,
``unit``, ``ceiling``, ``ratio``, ``target``, ``python``, ``db``) with a numeric value and a
numeric ratio equal to value / ceiling. A line whose target is absolute may leave ``ceiling``
null (its ``ratio`` is then null or the figure itself). The security benchmarks (S2, S3, S4,
S9, S10, built on bench/_common.py) always give a numeric ceiling and ratio. A script that needs
a service which is not configured exits 0 with only a skip notice (``skipped: <reason>`` on
stderr, or a JSON line with a ``skipped`` key): the test is skipped then, unless
``DASHTAM_TEST_REQUIRE_SERVICES=1``. Timing targets are never asserted here.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SCRIPTS = sorted(BENCH.glob("bench_*.py"))
REQUIRED_KEYS = ("scenario", "value", "unit", "ceiling", "ratio", "target", "python", "db")
#: Scripts built on bench/_common.py: every line has a numeric ceiling and ratio.
STRICT = frozenset(
    {
        "bench_s2_s3_http.py",
        "bench_s4_refresh.py",
        "bench_s9_ratelimit.py",
        "bench_s10_audit.py",
    }
)
TIMEOUT = 600


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def line_problems(row: Any, *, strict: bool) -> list[str]:
    """What is wrong with one result line (empty when it is well formed)."""
    if not isinstance(row, dict):
        return ["not a JSON object"]
    problems = [f"missing {key!r}" for key in REQUIRED_KEYS if key not in row]
    if problems:
        return problems
    for key in ("scenario", "unit", "python"):
        if not isinstance(row[key], str) or not row[key]:
            problems.append(f"{key!r} must be a non-empty string")
    if not _number(row["value"]):
        problems.append("value must be a finite number")
    ceiling, ratio = row["ceiling"], row["ratio"]
    if ceiling is None and not strict:
        # No same-run ceiling: an absolute target; the ratio is null or the figure itself.
        if ratio is not None and not _number(ratio):
            problems.append("ratio must be a finite number or null")
        return problems
    if not _number(ratio):
        problems.append("ratio must be a finite number")
    if not _number(ceiling) or ceiling <= 0:
        problems.append("ceiling must be a positive number")
    if not problems and not math.isclose(
        ratio, row["value"] / ceiling, rel_tol=0.01, abs_tol=0.002
    ):
        problems.append(f"ratio {ratio} is not value / ceiling")
    return problems


def test_line_checker_accepts_good_and_rejects_bad_lines() -> None:
    good = {
        "scenario": "s9_redis_checks",
        "value": 650.0,
        "unit": "checks/s",
        "ceiling": 1000.0,
        "ratio": 0.65,
        "target": ">= 0.65",
        "python": "3.11.7",
        "db": "redis",
    }
    assert line_problems(good, strict=True) == []
    assert line_problems({**good, "ceiling": None, "ratio": None}, strict=False) == []
    assert line_problems({**good, "ceiling": None, "ratio": None}, strict=True)
    assert line_problems({**good, "ceiling": None, "ratio": 0.77}, strict=False) == []
    assert line_problems({**good, "ceiling": None, "ratio": "0.77"}, strict=False)
    assert line_problems({**good, "ratio": None}, strict=False)
    assert line_problems({**good, "ceiling": 0, "ratio": 0.65}, strict=False)
    assert line_problems({**good, "ratio": 0.9}, strict=False)
    assert line_problems({**good, "value": "650"}, strict=False)
    assert line_problems({**good, "scenario": ""}, strict=False)
    assert line_problems({**good, "value": float("nan")}, strict=False)
    assert line_problems({k: v for k, v in good.items() if k != "db"}, strict=False)
    assert line_problems([good], strict=False)


def test_security_benchmarks_are_present() -> None:
    names = {path.name for path in SCRIPTS}
    assert names >= STRICT
    assert (BENCH / "_common.py").is_file()


def run_quick(script: Path) -> tuple[str, str, int]:
    """Run ``script --quick`` in its own process group; kill the whole group on timeout."""
    proc = subprocess.Popen(
        [sys.executable, str(script), "--quick"],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script and the servers it started
        stdout, stderr = proc.communicate()
        pytest.fail(f"{script.name} --quick ran over {TIMEOUT} s:\n{stderr[-3000:]}")
    return stdout, stderr, proc.returncode


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[path.stem for path in SCRIPTS])
def test_bench_quick(script: Path) -> None:
    stdout, stderr, returncode = run_quick(script)
    tail = stderr[-3000:]
    assert returncode == 0, f"{script.name} exited {returncode}:\n{tail}"
    lines = [json.loads(line) for line in stdout.splitlines() if line.lstrip().startswith("{")]
    # A skip notice: ``skipped: <reason>`` on stderr, or a JSON line with a "skipped" key.
    skipped = [line for line in stderr.splitlines() if line.startswith("skipped:")]
    skipped += [f"skipped: {row['skipped']}" for row in lines if "skipped" in row]
    rows = [row for row in lines if "skipped" not in row]
    if not rows:
        assert skipped, f"{script.name} printed no result line and no skip notice:\n{tail}"
        required = os.environ.get("DASHTAM_TEST_REQUIRE_SERVICES", "").strip() in ("1", "true")
        assert not required, f"{script.name}: {skipped[-1]} (DASHTAM_TEST_REQUIRE_SERVICES=1)"
        pytest.skip(f"{script.name}: {skipped[-1]}")
    strict = script.name in STRICT
    for row in rows:
        problems = line_problems(row, strict=strict)
        assert not problems, f"{script.name}: {row}: {problems}"
