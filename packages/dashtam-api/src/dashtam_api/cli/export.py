"""``dashtam export transactions --user EMAIL --format csv|json|ofx [-o FILE]``.

The same streamed export as ``GET /api/v1/exports/transactions`` (byte for byte), written chunk
by chunk as it is read, so a large export never sits in memory. With ``-o`` the chunks go to a
temporary file next to ``FILE`` that replaces it once complete: a failed export leaves no
half-written file behind.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from dashtam_api.cli.data import UserOption, parse_date, parse_uuid, run_with_container, user_id_for

if TYPE_CHECKING:
    from dashtam_core.application.container import Container

app = typer.Typer(help="Export data.", no_args_is_help=True)


def _file_mode(path: Path) -> int:
    """The mode ``path`` keeps (its own when it exists, else what the umask gives a new file)."""
    if path.exists():
        return stat.S_IMODE(path.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def _sink(output: Path | None) -> Iterator[IO[bytes]]:
    """Standard output, or a temporary file next to ``output`` that replaces it when complete."""
    if output is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    if output.exists() and not output.is_file():  # /dev/stdout, a FIFO: write in place
        with output.open("wb") as sink:
            yield sink
        return
    mode = _file_mode(output)
    fd, partial = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part", dir=output.parent)
    try:
        with os.fdopen(fd, "wb") as sink:
            os.fchmod(sink.fileno(), mode)
            yield sink
        os.replace(partial, output)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


@app.command("transactions")
def export_transactions(
    user: UserOption,
    fmt: Annotated[str, typer.Option("--format", help="csv, json or ofx.")] = "csv",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here.")] = None,
    account: Annotated[str | None, typer.Option("--account", help="Account id.")] = None,
    start: Annotated[str | None, typer.Option("--start", help="From YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="To YYYY-MM-DD.")] = None,
) -> None:
    """Export the user's transactions (stdout unless -o)."""
    from dashtam_core.application import exports
    from dashtam_core.application.queries import TransactionFilter

    if fmt not in exports.EXPORT_FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(exports.EXPORT_FORMATS)}")
    account_id = parse_uuid(account, "account") if account else None
    flt = TransactionFilter(
        account_id=account_id, start=parse_date(start, "--start"), end=parse_date(end, "--end")
    )

    async def work(c: Container) -> int:
        user_id = await user_id_for(c, user)  # an unknown user fails before any file exists
        written = 0
        with _sink(output) as sink:
            async for chunk in exports.export_stream(c.engine, user_id, fmt, flt):
                sink.write(chunk)
                written += len(chunk)
        return written

    written = run_with_container(work)
    if output is not None:
        typer.echo(f"wrote {written} bytes to {output}", err=True)


__all__ = ["app", "export_transactions"]
