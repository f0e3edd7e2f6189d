"""Benchmark S7: statement import, parse -> validated records (performance.md).

Builds a Chase-shaped 50k-transaction statement twice (OFX 1.02 SGML and OFX 2.2 XML), then:

* value: MB/s of ``ChaseProvider().parse_statement`` (read the file, tokenize, convert, map,
  build ``ProviderTransaction`` records with dedupe keys);
* ceiling: MB/s of the same-run floor for that work: read the same file and run one regex tag
  tokenization over it (``re.finditer`` on the bytes, no conversion);
* ratio = value / ceiling (targets: >= 0.15 SGML, >= 0.25 XML);
* peak RSS / file size, measured in a fresh, warmed-up child process: the high-water mark of the
  resident set minus the resident set before the file was read (so the file's own bytes count),
  divided by the file size (target <= 3).

Each case prints one JSON line ``{"scenario","value","unit","ceiling","ratio","target","python",
"db"}``. ``--quick`` uses 2,000 transactions so CI can prove the benchmark works in seconds.

Usage: ``.venv/bin/python bench/bench_s7_ofx.py [--quick] [--transactions N] [--repeat R]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER_SGML = (
    "OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:USASCII\nCHARSET:1252\n"
    "COMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n"
)
HEADER_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    '<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" NEWFILEUID="NONE"?>\n'
)
MERCHANTS = [
    "WHOLE FOODS PDX 10243 PORTLAND OR 04/27",
    "Online Transfer to SAV ...4821 transaction#: 24077193340 04/24",
    "CONTOSO LTD PAYROLL PPD ID: 1911234567",
    "NETFLIX.COM NETFLIX.COM CA 04/15",
    "Zelle payment from ALEX RIVERA WFCT0Z8K2L1M",
    "COSTCO WHSE #0099 TIGARD OR 04/08",
    "AT&amp;T MOBILITY ONLINE PMT",
    "SAFEWAY #1447 PORTLAND OR 03/25",
    "ATM WITHDRAWAL 004417 03/231200 SE MAIN ST",
    "SHELL OIL 57444 PORTLAND OR 03/09",
]
TOKEN = re.compile(rb"<(/?)([A-Za-z0-9.]+)>([^<]*)")


def _leaf(tag: str, value: str, xml: bool) -> str:
    return f"<{tag}>{value}</{tag}>\n" if xml else f"<{tag}>{value}\n"


def build_statement(transactions: int, *, xml: bool, seed: int = 7) -> bytes:
    """A Chase-shaped checking statement with ``transactions`` STMTTRN (newest first)."""
    rng = random.Random(seed)
    out = [HEADER_XML if xml else HEADER_SGML]
    out.append(
        "<OFX>\n<SIGNONMSGSRSV1>\n<SONRS>\n<STATUS>\n"
        + _leaf("CODE", "0", xml)
        + _leaf("SEVERITY", "INFO", xml)
        + "</STATUS>\n"
        + _leaf("DTSERVER", "20250430120000[0:GMT]", xml)
        + _leaf("LANGUAGE", "ENG", xml)
        + "</SONRS>\n</SIGNONMSGSRSV1>\n<BANKMSGSRSV1>\n<STMTTRNRS>\n"
        + _leaf("TRNUID", "1", xml)
        + "<STATUS>\n"
        + _leaf("CODE", "0", xml)
        + _leaf("SEVERITY", "INFO", xml)
        + "</STATUS>\n<STMTRS>\n"
        + _leaf("CURDEF", "USD", xml)
        + "<BANKACCTFROM>\n"
        + _leaf("BANKID", "021000021", xml)
        + _leaf("ACCTID", "9876543210", xml)
        + _leaf("ACCTTYPE", "CHECKING", xml)
        + "</BANKACCTFROM>\n<BANKTRANLIST>\n"
        + _leaf("DTSTART", "20200101120000[0:GMT]", xml)
        + _leaf("DTEND", "20250430120000[0:GMT]", xml)
    )
    total = 0
    for index in range(transactions):
        day = 20250430 - (index // 40) % 28  # ~40 transactions a day over four weeks
        cents = rng.randint(-250_000, 150_000) or 1
        total += cents
        memo = MERCHANTS[index % len(MERCHANTS)]
        name = memo[:32].rstrip()
        trntype = "CREDIT" if cents > 0 else "DEBIT"
        out.append(
            "<STMTTRN>\n"
            + _leaf("TRNTYPE", trntype, xml)
            + _leaf("DTPOSTED", f"{day}120000[0:GMT]", xml)
            + _leaf("TRNAMT", f"{cents / 100:.2f}", xml)
            + _leaf("FITID", f"{day}{index:012d}", xml)
            + _leaf("NAME", name, xml)
            + (_leaf("MEMO", memo, xml) if len(memo) > 32 else "")
            + "</STMTTRN>\n"
        )
    out.append(
        "</BANKTRANLIST>\n<LEDGERBAL>\n"
        + _leaf("BALAMT", f"{total / 100:.2f}", xml)
        + _leaf("DTASOF", "20250430120000[0:GMT]", xml)
        + "</LEDGERBAL>\n</STMTRS>\n</STMTTRNRS>\n</BANKMSGSRSV1>\n</OFX>\n"
    )
    return "".join(out).encode("cp1252")


def _best_pair(first: object, second: object, repeat: int) -> tuple[float, float]:
    """Best-of-``repeat`` CPU times of two callables, run alternately (shared machines are noisy).

    Process CPU time, not wall time: other processes on the machine do not inflate it.
    """
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for index, fn in enumerate((first, second)):
            start = time.process_time()
            fn()  # type: ignore[operator]
            best[index] = min(best[index], time.process_time() - start)
    return best[0], best[1]


def _ceiling(path: Path) -> int:
    data = path.read_bytes()
    count = 0
    for _ in TOKEN.finditer(data):
        count += 1
    return count


def _parse(path: Path, expected: int) -> None:
    from dashtam_provider_chase import ChaseProvider

    statement = ChaseProvider().parse_statement(path.read_bytes(), path.name).unwrap()
    if len(statement.transactions) != expected:
        raise SystemExit(f"expected {expected} transactions, got {len(statement.transactions)}")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child_rss(path: str, expected: int) -> None:
    """Run in a fresh process: print (peak RSS - RSS before reading) in bytes."""
    # A warm process (as a server worker is): imports, settings and caches are not measured.
    warm = Path(path).with_name("warm.qfx")
    warm.write_bytes(build_statement(20, xml=False))
    _parse(warm, 20)
    before = _status_kib("VmRSS")
    _parse(Path(path), expected)
    print((_status_kib("VmHWM") - before) * 1024)


def main() -> None:
    """Run the SGML and XML cases and print one JSON line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 transactions (CI smoke run)")
    parser.add_argument("--transactions", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child-rss", nargs=2, metavar=("PATH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        _child_rss(args.child_rss[0], int(args.child_rss[1]))
        return
    count = 2_000 if args.quick else args.transactions
    repeat = 2 if args.quick else args.repeat
    python = platform.python_version()
    with tempfile.TemporaryDirectory() as tmp:
        for label, xml, target in (("sgml", False, 0.15), ("xml", True, 0.25)):
            path = Path(tmp) / f"Chase3210_Activity_s7.{'ofx' if xml else 'qfx'}"
            path.write_bytes(build_statement(count, xml=xml))
            size_mb = path.stat().st_size / 1e6
            ceiling_s, value_s = _best_pair(
                lambda p=path: _ceiling(p), lambda p=path: _parse(p, count), repeat
            )
            ceiling, value = size_mb / ceiling_s, size_mb / value_s
            row = {
                "scenario": f"S7 {label}: {count} transactions parse -> records",
                "value": round(value, 2),
                "unit": "MB/s",
                "ceiling": round(ceiling, 2),
                "ratio": round(value / ceiling, 3),
                "target": target,
                "python": python,
                "db": None,
            }
            print(json.dumps(row), flush=True)
            child = subprocess.run(
                [sys.executable, __file__, "--child-rss", str(path), str(count)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
            rss = int(child.stdout.strip()) / path.stat().st_size
            row = {
                "scenario": f"S7 {label}: peak RSS / file size (<= target)",
                "value": round(rss, 2),
                "unit": "x file size",
                "ceiling": None,
                "ratio": round(rss, 2),
                "target": 3.0,
                "python": python,
                "db": None,
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
