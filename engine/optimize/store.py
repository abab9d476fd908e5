"""The live store of an optimization: ``DIR/trials.sqlite``.

One row per evaluated unit (a parameter set run on one segment: a walk-forward chunk or a
stress scenario), inserted and committed the moment its result reaches the parent process.
The database is in WAL mode with ``synchronous=NORMAL``: a committed row survives the
process being killed (``kill -9``) at any instant; only an operating-system crash could lose
the last few commits, which ``--resume`` would then simply evaluate again.

Only the parent process writes; workers return plain records.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from risk.errors import DeleverageError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evals (
    key TEXT PRIMARY KEY,      -- hash of (parameter set, segment)
    params TEXT NOT NULL,      -- canonical JSON of the parameter set
    segment TEXT NOT NULL,     -- 'chunk:K' or 'scenario:NAME'
    score REAL,                -- objective value (NULL when undefined, e.g. no returns)
    liquidated INTEGER NOT NULL,
    bars INTEGER,
    engine TEXT,               -- 'fast' or 'backtrader'
    error TEXT,                -- the strategy's error for an invalid set, else NULL
    seconds REAL,              -- wall time of the evaluation (informational)
    finished_at REAL,          -- unix time the row was written (informational)
    min_distance REAL          -- smallest distance to the liquidation price (fraction of the mark)
);
"""


class TrialStore:
    """``trials.sqlite``: ``get``/``put`` evaluation records by key; ``meta`` for the config."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), timeout=30.0)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        cols = {r[1] for r in self.conn.execute("PRAGMA table_info(evals)")}
        if "min_distance" not in cols:  # a store written before the column existed
            self.conn.execute("ALTER TABLE evals ADD COLUMN min_distance REAL")
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "TrialStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- meta ----------------------------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value, sort_keys=True)))
        self.conn.commit()

    # --- evaluations ---------------------------------------------------------------------------

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM evals").fetchone()[0])

    def keys(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT key FROM evals")}

    def get_many(self, keys: list[str], params: bool = True) -> dict[str, dict[str, Any]]:
        """The stored records of ``keys`` (those present); ``params=False`` leaves the parameter
        set's JSON unparsed (a resume of a large search only needs the results)."""
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                    "SELECT key, params, segment, score, liquidated, bars, engine, error, min_distance FROM evals "
                    f"WHERE key IN ({marks})", chunk):
                out[row[0]] = {"key": row[0], "params": json.loads(row[1]) if params else row[1], "segment": row[2],
                               "score": float("nan") if row[3] is None else float(row[3]),
                               "liquidated": bool(row[4]), "bars": row[5], "engine": row[6], "error": row[7],
                               "min_distance": float("nan") if row[8] is None else float(row[8])}
        return out

    def put(self, record: dict[str, Any], params_text: str, segment: str) -> None:
        """Insert one finished evaluation and commit it (idempotent on the key)."""
        self.put_many([(record, params_text, segment)])

    def put_many(self, rows: list[tuple[dict[str, Any], str, str]]) -> None:
        """Insert finished evaluations ``(record, params_text, segment)`` in one transaction and
        commit (a batch's records arrive together; idempotent on the key)."""
        def nul(v: Any) -> Any:
            return None if v is None or v != v else v  # NaN -> NULL

        now = time.time()
        try:
            self.conn.executemany(
                "INSERT OR IGNORE INTO evals (key, params, segment, score, liquidated, bars, engine, error, seconds, "
                "finished_at, min_distance) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r["key"], params_text, segment, nul(r.get("score")), int(bool(r.get("liquidated"))), r.get("bars"),
                  r.get("engine"), r.get("error"), r.get("seconds"), now, nul(r.get("min_distance")))
                 for r, params_text, segment in rows])
            self.conn.commit()
        except sqlite3.DatabaseError as exc:
            raise DeleverageError(f"cannot write {self.path}: {exc}") from exc
