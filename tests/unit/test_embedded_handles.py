"""Pruning the embedded server's list of processes using it (no server is started here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ticker_service.db.embedded import prune_dead_handles


def test_dead_and_reused_pids_are_pruned_live_ones_kept(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # exited and reaped: its pid no longer exists
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        handles = tmp_path / ".handle_pids.json"
        handles.write_text(json.dumps([gone.pid, os.getpid(), live.pid]))
        assert prune_dead_handles(tmp_path) == [gone.pid]
        assert json.loads(handles.read_text()) == [os.getpid(), live.pid]
        assert prune_dead_handles(tmp_path) == []

        # a list last written before `live` started cannot name it: its pid was reused (a reboot)
        an_hour_ago = time.time() - 3600
        os.utime(handles, (an_hour_ago, an_hour_ago))
        assert prune_dead_handles(tmp_path) == [live.pid]
        assert json.loads(handles.read_text()) == [os.getpid()]
    finally:
        live.kill()
        live.wait()
    assert prune_dead_handles(tmp_path / "missing") == []
