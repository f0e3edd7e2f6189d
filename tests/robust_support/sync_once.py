"""Sync one connection in a process of its own: the target of ``test_robust_sigkill.py``.

Usage: ``python sync_once.py CONNECTION_ID`` with the ``DASHTAM_*`` settings in the environment.
The process builds the application container, prints ``ready`` and waits for a line on stdin,
then runs :func:`dashtam_core.application.syncing.sync_connection` and prints the run's id and
status as JSON (exit 0; 1 on an ``Err``). ``test_robust_sigkill.py`` kills it with SIGKILL at a
random moment after sending that line; ``test_robust_concurrent_sync.py`` runs several at once.
"""

from __future__ import annotations

import asyncio
import json
import sys
from uuid import UUID

from dashtam_core.application.container import Container
from dashtam_core.application.syncing import sync_connection
from dashtam_core.result import Err
from dashtam_core.settings import CoreSettings


async def main(connection_id: UUID) -> int:
    """Wait for the go line, sync, report; 0 when a run came back (its status is printed)."""
    container = await Container.create(CoreSettings(_env_file=None), migrate=False)
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        result = await sync_connection(container, connection_id)
        if isinstance(result, Err):
            print(json.dumps({"error": result.error.code}), flush=True)
            return 1
        run = result.value
        print(json.dumps({"id": str(run.id), "status": str(run.status)}), flush=True)
        return 0
    finally:
        await container.aclose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(UUID(sys.argv[1]))))
