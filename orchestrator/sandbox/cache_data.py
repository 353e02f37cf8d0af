"""ElastiCache's data for the sandbox: what a snapshot holds, and a group restored from one.

moto keeps ElastiCache's control plane (groups, snapshots, their states) but no data. The
sandbox's stage group is its local Redis/Valkey server, so:

- a snapshot of the stage group holds that server's data at the time of CreateSnapshot (`SAVE`,
  then the RDB file it wrote), which CopySnapshot exports to S3 as `<name>-0001.rdb`;
- a group created from a snapshot (`SnapshotName`) is a second server of the same binary started
  on that RDB file: it answers once the file is loaded, at the restore port the sandbox reserved
  when it started (one restored group at a time, as the release lock allows one drill at a time);
- deleting the group stops that server.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from pathlib import Path

import redis

from orchestrator.sandbox.redis_server import RedisServer, free_port

log = logging.getLogger(__name__)
RDB_FILE = "dump.rdb"  # the servers' default dbfilename, loaded at start


class RestoreUnavailable(RuntimeError):
    """The restore port is taken by another restored group."""


class CacheData:
    def __init__(self, live: RedisServer, live_groups: set[str], restore_port: int | None = None) -> None:
        self.live = live
        self.live_groups = set(live_groups)
        self.restore_port = restore_port or free_port()
        self._restored: dict[str, RedisServer] = {}
        self._lock = threading.Lock()

    @property
    def restore_url(self) -> str:
        return f"redis://127.0.0.1:{self.restore_port}/0"

    def capture(self, group_id: str | None) -> bytes | None:
        """The RDB of the group's data now, or None for a group the sandbox holds no data for."""
        if group_id not in self.live_groups:
            return None
        client = redis.Redis(host="127.0.0.1", port=self.live.port, socket_timeout=30)
        try:
            client.save()
            return (Path(self.live.workdir) / RDB_FILE).read_bytes()
        finally:
            client.close()

    def restore(self, group_id: str, rdb: bytes) -> tuple[str, int]:
        """Start the group's server on the RDB (blocks until it answers); its address."""
        with self._lock:
            if self._restored:
                raise RestoreUnavailable(
                    f"the sandbox serves one restored group at a time; {', '.join(self._restored)} exists"
                )
            workdir = tempfile.mkdtemp(prefix=f"restored-{group_id}-")
            (Path(workdir) / RDB_FILE).write_bytes(rdb)
            server = RedisServer(port=self.restore_port, binary=self.live.binary, workdir=workdir)
            try:
                server.start(timeout=30)
            except RuntimeError:
                shutil.rmtree(workdir, ignore_errors=True)
                raise
            self._restored[group_id] = server
        log.info("restored group %s: %d-byte RDB loaded on port %d", group_id, len(rdb), self.restore_port)
        return "127.0.0.1", self.restore_port

    def delete(self, group_id: str) -> None:
        with self._lock:
            server = self._restored.pop(group_id, None)
        if server is not None:
            server.stop()

    def restored(self) -> list[str]:
        with self._lock:
            return sorted(self._restored)

    def stop(self) -> None:
        for group_id in self.restored():
            self.delete(group_id)
