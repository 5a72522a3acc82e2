"""The soak's reader: a PyHive client polling the trend views and the enriched table of each
database through HiveServer2 (the Spark Thrift Server), as a dashboard would, all the while.

A torn state is an answer no commit ever produced. The tables only grow (every record is new,
re-sent ones are quarantined), so per database and source a committed state never has fewer
records than one read earlier, the three trend views agree with each other over time, and the
enriched table never holds a trans_id twice."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from berka_core.config import Settings

TREND_COUNTS = {
    "yearly_trend": "SUM(transaction_count)",
    "monthly_trend": "SUM(transaction_count)",
    "trans_by_age_gender": "SUM(transaction_count)",
}


@dataclass
class Answer:
    started: float  # epoch seconds: a query that started before a commit may end after it
    ended: float
    database: str
    source: str
    records: int
    distinct: int | None = None  # enriched_transactions: distinct trans_ids


@dataclass
class Reader:
    settings: Settings
    databases: list[str]
    answers: list[Answer] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="soak-reader", daemon=True)
        thread.start()
        return thread

    def _queries(self) -> list[tuple[str, str, str]]:
        queries = []
        for database in self.databases:
            for view, total in TREND_COUNTS.items():
                queries.append((database, view, f"SELECT {total} FROM `{database}`.`{view}`"))
            queries.append((database, "enriched_transactions",
                            "SELECT COUNT(*), COUNT(DISTINCT trans_id) "
                            f"FROM `{database}`.enriched_transactions"))
        return queries

    def _run(self) -> None:
        cursor = None
        while not self.stop.is_set():
            if cursor is None:
                cursor = self._connect()
                if cursor is None:
                    continue
            for database, source, sql in self._queries():
                started = time.time()
                try:
                    cursor.execute(sql)
                    row = cursor.fetchall()[0]
                except Exception as error:  # noqa: BLE001 - every error is a finding
                    # When it came back: a query in flight when the Thrift Server stops fails
                    # during the stop, though it started before.
                    self.errors.append((time.time(),
                                        f"{source}: {str(error).splitlines()[0][:200]}"))
                    cursor = None  # the server may be gone: connect again
                    break
                self.answers.append(Answer(started, time.time(), database, source,
                                           int(row[0] or 0),
                                           int(row[1]) if len(row) > 1 else None))
            self.stop.wait(0.2)

    def _connect(self):
        from pyhive import hive

        hive_settings = self.settings.hive
        try:
            return hive.connect(host=hive_settings.host, port=hive_settings.port,
                                username=hive_settings.username, auth=hive_settings.auth).cursor()
        except Exception as error:  # noqa: BLE001 - Thrift Server down: try again shortly
            self.errors.append((time.time(), f"connect: {str(error).splitlines()[0][:200]}"))
            self.stop.wait(1.0)
            return None

    def torn_states(self) -> list[str]:
        """Answers no sequence of commits explains: a count that went down, or duplicates."""
        findings = []
        latest: dict[tuple[str, str], Answer] = {}
        for answer in sorted(self.answers, key=lambda a: a.started):
            if answer.distinct is not None and answer.distinct != answer.records:
                findings.append(f"{answer.database}.{answer.source} at {answer.started:.1f}: "
                                f"{answer.records} rows, {answer.distinct} distinct trans_ids")
            previous = latest.get((answer.database, answer.source))
            # Only a query that started after the previous one ended must see at least as much.
            if previous and answer.started > previous.ended and answer.records < previous.records:
                findings.append(f"{answer.database}.{answer.source} went from "
                                f"{previous.records} to {answer.records} records")
            if previous is None or answer.records >= previous.records:
                latest[(answer.database, answer.source)] = answer
        return findings
