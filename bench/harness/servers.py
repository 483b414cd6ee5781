"""The servers under test: `ticker-service serve` (from this source tree or another) and the ceiling app.

Every start gets a fresh database, a free port and its own log file, and is waited on until it is
healthy; every stop is reported if it was not a clean exit on SIGTERM, and the logs are summarised
at the end, because a figure measured while the server was logging errors is not the figure it seems.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.database import Database
from harness.procs import BENCH, ROOT, VENV_BIN, free_port, spawn, stop, wait_healthy

# One paper account with funds that never run out, so margin never rejects an order under load.
ACCOUNTS = '{"primary": {"broker": "paper", "funds": 1e15}}'

# What the service reads from its environment (settings.py, db/migrate.py), dropped from the
# environment a server inherits, so the shell a benchmark is started from cannot change the
# configuration under test; PYTHONPATH too, so the code under test is the tree a `Tree` names.
_SETTING_PREFIXES = ("TICKER_", "WEBHOOK_", "TASK_", "LOG_")
_SETTING_NAMES = frozenset({"DATABASE_URL", "HOST", "PORT", "ALEMBIC_CONFIG", "PYTHONPATH"})


@dataclass(frozen=True)
class Tree:
    """A source tree of the service, so that two commits can be measured side by side in one run.

    The service runs from `venv_bin/ticker-service` with the tree's root as working directory (its
    alembic.ini is found there), and with PYTHONPATH=`pythonpath` when the venv belongs to another
    tree: the project is installed editable through a plain .pth path entry, which comes after
    PYTHONPATH on sys.path. `check()` proves which code is actually imported.
    """

    root: Path
    venv_bin: Path
    pythonpath: Path | None = None

    @classmethod
    def at(cls, root: Path) -> Tree:
        """The tree's own .venv if it has one (its dependencies may differ), else ours pointed at its src/."""
        root = root.resolve()
        own = root / ".venv" / "bin"
        if (own / "ticker-service").exists():
            return cls(root, own)
        return cls(root, VENV_BIN, root / "src")

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        if self.pythonpath is not None:
            env["PYTHONPATH"] = str(self.pythonpath)
        return env

    def check(self) -> str:
        """Fail unless `ticker_service` imports from this tree's src/; returns the file and the commit.

        Asked of the same interpreter, environment and working directory the server gets, since an
        editable install elsewhere or a stray PYTHONPATH would silently benchmark the wrong code.
        """
        if not (self.root / "src" / "ticker_service").is_dir():
            raise RuntimeError(f"{self.root} holds no src/ticker_service")
        out = subprocess.run(
            [str(self.venv_bin / "python"), "-c", "import ticker_service; print(ticker_service.__file__)"],
            cwd=self.root,
            env=self.env(inherited_env()),
            capture_output=True,
            text=True,
            check=False,
        )
        where = Path(out.stdout.strip() or "?").resolve()
        if out.returncode != 0 or not where.is_relative_to(self.root / "src"):
            raise RuntimeError(
                f"{self.venv_bin / 'python'} imports ticker_service from {where}, not from {self.root / 'src'}"
                f"{': ' + out.stderr.strip()[-500:] if out.returncode else ''}"
            )
        return f"{where} ({self.describe()})"

    def describe(self) -> str:
        """The commit, and whether the tree has uncommitted changes: what the figures belong to."""
        out = subprocess.run(
            ["git", "-C", str(self.root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip() if out.returncode == 0 else "not a git checkout"


THIS_TREE = Tree(ROOT, VENV_BIN)


def inherited_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_SETTING_PREFIXES) and k not in _SETTING_NAMES}


@dataclass(frozen=True)
class Config:
    """One server configuration under test; `key` groups its runs' logs, `label` is printed."""

    key: str
    label: str
    kind: Literal["service", "ceiling"]
    env: dict[str, str] = field(default_factory=dict)
    tree: Tree = THIS_TREE


@dataclass
class Running:
    config: Config
    db: str
    port: int
    proc: subprocess.Popen[Any]
    log: Path


class Servers:
    def __init__(self, workdir: Path, db: Database) -> None:
        self.workdir = workdir
        self.db = db
        self.logs: dict[str, list[Path]] = collections.defaultdict(list)
        self.labels: dict[str, str] = {}
        self.stop_notes: list[str] = []

    def start(self, config: Config, db: str | None = None) -> Running:
        """Start on a fresh database, or on `db` to hand one server's rows to the next."""
        name = db or self.db.fresh()
        port = free_port()
        env = config.tree.env(inherited_env())
        env.update(
            DATABASE_URL=self.db.url(name),
            PORT=str(port),
            HOST="127.0.0.1",
            LOG_LEVEL="WARNING",
            TICKER_ACCOUNTS=ACCOUNTS,
            TICKER_DATA_DIR=str(self.workdir / "ticker-data"),
            PYTHONUNBUFFERED="1",
        )
        env.update(config.env)
        logfile = self.workdir / f"{config.key}-{name}.log"
        self.logs[config.key].append(logfile)
        self.labels[config.key] = config.label
        if config.kind == "service":
            cmd, cwd = [str(config.tree.venv_bin / "ticker-service"), "serve"], config.tree.root
        else:
            cmd, cwd = [sys.executable, str(BENCH / "ceiling_app.py")], ROOT
        proc = spawn(cmd, env=env, out=logfile, cwd=cwd)
        try:
            wait_healthy(port, proc)
        except Exception:
            stop(proc)
            print(logfile.read_text()[-3000:], file=sys.stderr)
            raise
        return Running(config, name, port, proc, logfile)

    def finish(self, run: Running, *, keep_db: bool = False) -> None:
        how = stop(run.proc)
        if how != "stopped by SIGTERM":
            self.stop_notes.append(f"{run.config.key} ({run.db}): {how}, exit code {run.proc.returncode}")
        if not keep_db:
            self.db.drop(run.db)

    def print_epilogue(self) -> None:
        """After the figures: anything that casts doubt on them (unclean stops, logged warnings and errors)."""
        for note in self.stop_notes:
            print(f"  shutdown: {note}")
        for key, paths in self.logs.items():
            lines = summarize_logs(paths)
            if lines:
                print(f"warnings/errors logged by {self.labels[key]}:")
                for ln in lines:
                    print(f"  {ln}")


def summarize_logs(paths: list[Path]) -> list[str]:
    """Warning/error lines grouped by message: a stall repeated 10,000 times should be one line."""
    counts: collections.Counter[str] = collections.Counter()
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
                level = str(rec.get("level", rec.get("log_level", "?"))).lower()
                if level in {"debug", "info"}:
                    continue
                counts[f"{level}: {str(rec.get('event', ''))[:120]}"] += 1
            except (ValueError, AttributeError):
                if line.startswith("INFO") or "Uvicorn running" in line or "Waiting for application" in line:
                    continue
                counts[f"text: {line[:120]}"] += 1
    return [f"{n:6d} x {what}" for what, n in counts.most_common(12)]
