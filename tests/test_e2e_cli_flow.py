"""End to end with only the CLI (subprocesses), in sandbox mode: create a user, import the Chase
samples, connect Alpaca and Schwab, sync, list; a second sync adds nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "packages/dashtam-core/tests/fixtures/chase"
EMAIL = "e2e@example.com"
ALPACA_KEYS = {
    "api_key_id": "PKSANDBOX0DASHTAM000",
    "secret_key": "sandbox-secret-0000000000000000000000000000",
}


class Cli:
    def __init__(self, workdir: Path, database_url: str, pycache: Path) -> None:
        self.workdir = workdir
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DASHTAM_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        self.env = keep | {
            # compile each module once for the many short-lived processes, outside the tree
            "PYTHONPYCACHEPREFIX": str(pycache),
            "DASHTAM_DATABASE_URL": database_url,
            "DASHTAM_SECRET_DIR": str(workdir / "keys"),
            "DASHTAM_MAIL_OUTBOX": str(workdir / "outbox"),
            "DASHTAM_SANDBOX": "true",
            # nothing listens there: the CLI uses in-process simulators
            "DASHTAM_PUBLIC_BASE_URL": "http://127.0.0.1:9",
        }

    def run(self, *args: str, stdin: str = "", expect: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "dashtam_api.cli.app", *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.workdir,
            env=self.env,
            timeout=120,
            check=False,
        )
        assert done.returncode == expect, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    def json(self, *args: str, stdin: str = "") -> Any:
        return json.loads(self.run(*args, "--json", stdin=stdin).stdout)


@pytest.fixture(scope="module")
def pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pycache")


def test_cli_end_to_end(database_url: str, tmp_path: Path, pycache: Path) -> None:
    cli = Cli(tmp_path, database_url, pycache)
    cli.run("db", "upgrade")
    cli.run("keys", "generate")  # generated on first use only on the embedded SQLite default
    missing = cli.run("accounts", "--user", EMAIL, expect=1)
    assert f"no user {EMAIL} (create one with dashtam users create)" in missing.stderr
    cli.run("sync", expect=2)  # usage error
    cli.run(
        "users", "create", EMAIL, "--verified", "--password-stdin", stdin="Vq8#tRz!mW2pLx9$kD\n"
    )

    added = {}
    for name in ("checking.qfx", "checking.csv", "credit_card.qfx", "credit_card.csv"):
        out = cli.json("import", str(FIXTURES / name), "--user", EMAIL)
        added[name] = out["transactions_added"]
        assert out["errors"] == []
    assert added == {
        "checking.qfx": 25,
        "checking.csv": 20,
        "credit_card.qfx": 15,
        "credit_card.csv": 20,
    }
    again = cli.json("import", str(FIXTURES / "checking.qfx"), "--user", EMAIL)
    assert again["transactions_added"] == 0
    bad = cli.run(
        "import", str(FIXTURES / "checking.csv"), "--user", EMAIL, "--provider", "nope", expect=1
    )
    assert "nope" in bad.stderr

    alpaca = cli.json(
        "connect",
        "alpaca",
        "--user",
        EMAIL,
        "--option",
        "environment=paper",
        stdin=json.dumps(ALPACA_KEYS),
    )
    assert alpaca["connection"]["status"] == "active"
    assert alpaca["sync"]["status"] == "succeeded"
    schwab = cli.json("connect", "schwab", "--user", EMAIL)
    assert schwab["connection"]["status"] == "active"
    assert schwab["sync"]["counts"]["transactions_added"] == 14
    wrong = cli.run(
        "connect",
        "alpaca",
        "--user",
        EMAIL,
        "--credential",
        "api_key_id=PKBAD",
        "--credential",
        "secret_key=bad",
        expect=1,
    )
    assert "invalid_credentials" in wrong.stderr

    syncs = cli.json("sync", "--user", EMAIL)["data"]
    assert [s["status"] for s in syncs] == ["succeeded", "succeeded"]
    for s in syncs:
        assert s["counts"]["transactions_added"] == 0
        assert s["counts"]["transactions_modified"] == 0
        assert s["counts"]["transactions_removed"] == 0

    accounts = cli.json("accounts", "--user", EMAIL)["data"]
    balances = {
        a["name"]: Decimal(a["balance"]["current"])
        for a in accounts
        if a["balance"]["current"] is not None
    }
    assert len(accounts) == 7  # 4 Chase + 1 Alpaca + 2 Schwab
    assert Decimal("7623.24") in balances.values()
    assert Decimal("13272.09") in balances.values()
    assert {Decimal("18517.92"), Decimal("12668.80")} <= set(balances.values())

    holdings = cli.json("holdings", "--user", EMAIL)["data"]
    assert len(holdings) == 3 + 6
    assert {h["symbol"] for h in holdings} >= {"AAPL", "SPY", "BTCUSD", "JNJ", "SCHD"}

    txs = cli.json("transactions", "--user", EMAIL)["data"]
    assert len(txs) == 25 + 20 + 15 + 20 + 11 + 14
    alpaca_account = next(a["id"] for a in accounts if a["provider"] == "alpaca")
    only = cli.json("transactions", "--user", EMAIL, "--account", alpaca_account)["data"]
    assert sum(Decimal(t["amount"]) for t in only) == Decimal("2610.24")
    window = cli.json(
        "transactions", "--user", EMAIL, "--start", "2025-04-01", "--end", "2025-04-30"
    )["data"]
    assert window
    assert all("2025-04-01" <= t["date"] <= "2025-04-30" for t in window)

    csv_out = tmp_path / "tx.csv"
    cli.run("export", "transactions", "--user", EMAIL, "--format", "csv", "-o", str(csv_out))
    lines = csv_out.read_text().splitlines()
    assert lines[0].startswith("id,account_id,date,posted_at,amount,currency,description,")
    assert len(lines) == 1 + len(txs)
    assert not list(tmp_path.glob(".tx.csv.*"))  # the temporary file was renamed into place
    exported = json.loads(
        cli.run("export", "transactions", "--user", EMAIL, "--format", "json").stdout
    )["data"]
    # The API's objects (the listing's, which --json prints in the API's shape), newest first.
    assert exported == sorted(txs, key=lambda t: (t["date"], t["id"]), reverse=True)
    ofx = cli.run("export", "transactions", "--user", EMAIL, "--format", "ofx").stdout
    assert ofx.count("<STMTTRN>") == len(txs)

    chase_connection = next(
        c["id"]
        for c in cli.json("connections", "--user", EMAIL)["data"]
        if c["provider"] == "chase"
    )
    redone = cli.json("reprocess", chase_connection)
    assert redone["transactions_added"] == redone["transactions_modified"] == 0
    assert redone["transactions_removed"] == 0


@pytest.fixture(autouse=True)
def _fixtures_present() -> None:
    assert (FIXTURES / "checking.qfx").is_file()
