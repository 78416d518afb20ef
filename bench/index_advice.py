"""The index advice proven on a production-sized copy: ``dbops review-indexes --verify`` on ≥ 1M rows.

Builds a synthetic platform database (``--scale 0.5`` is 1.7M rows: 1M audit logs, 500k analytics
events), runs the application-like workload on it so pg_stat_statements records it, backs it up into a
local store, and runs the review with ``--verify`` as the CLI does: the workload advice on the
database, then every advised index built and timed on a scratch copy of the backup. Prints each
workload finding's verdict with its measured times and speedup, and asserts that every statement of
the planted workload is served by a recommended index measured at least 5x faster, and that nothing
recommended measured slower.

    .venv/bin/python bench/index_advice.py [--scale 0.5] [--json report.json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness import synth_database, synth_plan
from pydantic import SecretStr

from models.index_review import FindingKind
from models.settings import load_settings
from tasks.backup.dump import backup
from tasks.index_review.render import human_bytes
from tasks.index_review.verify.run import verify_review
from tasks.postgres import driver
from tasks.postgres.binaries import embedded_bindir
from tasks.postgres.embedded import ensure_running, stop
from tasks.seed.app_workload import STATEMENTS, run_app_workload
from tasks.storage import open_store

MIN_PLANTED_SPEEDUP = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--calls", type=int, default=100, help="Calls of each workload statement.")
    parser.add_argument("--json", type=Path, default=None)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        base, home = Path(directory) / "pg", Path(directory) / "home"
        server = ensure_running(
            base,
            embedded_bindir(),
            durable=False,
            server_settings={"shared_preload_libraries": "pg_stat_statements"},
        )
        try:
            started = time.perf_counter()
            url = server.url(synth_database(server, home, synth_plan(arguments.scale)))
            with driver.connect(url, purpose="bench", autocommit=True) as connection:
                connection.execute("VACUUM ANALYZE")
                rows = connection.execute(
                    "SELECT sum(n_live_tup)::bigint FROM pg_stat_user_tables"
                ).fetchone()
            calls = run_app_workload(url, calls=arguments.calls)
            settings = load_settings(
                _env_file=None,
                database_url=SecretStr(url.render_as_string(hide_password=False)),
                home=home,
                backup_url=str(Path(directory) / "store"),
            )
            store = open_store(settings)
            backup(url, settings, store)
            prepared = time.perf_counter() - started
            started = time.perf_counter()
            report = verify_review(url, settings, store)
            seconds = time.perf_counter() - started
        finally:
            stop(base, embedded_bindir())
    assert rows is not None
    print(f"database: {int(str(rows[0])):,} rows, {calls} workload calls; ready in {prepared:.0f} s")
    print(f"review --verify (restore, vacuum, build and time each index): {seconds:.1f} s")
    served: dict[str, float] = {}
    slower = []
    for finding in report.findings:
        if finding.kind is not FindingKind.WORKLOAD_INDEX:
            continue
        evidence = finding.evidence
        print(f"  {evidence.get('verdict')}: {finding.index} on {finding.table}")
        if finding.measured_ms_before is None or finding.measured_ms_after is None:
            print(f"    {finding.recommendation}")
            continue
        print(
            f"    {finding.measured_ms_before:,.2f} ms -> {finding.measured_ms_after:,.2f} ms "
            f"(speedup {evidence['speedup']}x), buffers {evidence['buffers_before']:,} -> "
            f"{evidence['buffers_after']:,}, built in {evidence['build_seconds']:.2f} s, "
            f"{human_bytes(int(evidence['size_bytes']))}, insert WAL "
            f"{human_bytes(int(evidence['insert_wal_before_bytes']))} -> "
            f"{human_bytes(int(evidence['insert_wal_after_bytes']))}"
        )
        if evidence.get("verdict") == "recommended":
            if finding.measured_ms_after >= finding.measured_ms_before:
                slower.append(finding.id)
            for row in finding.statements or ():
                query = " ".join(str(row["query"]).split())
                served[query] = max(served.get(query, 0.0), float(row["ms_before"]) / float(row["ms_after"]))
    for finding in report.findings:
        if finding.evidence.get("verdict") == "kept":
            print(f"  kept: {finding.index}: {finding.recommendation}")
    missing = []
    for statement, _ in STATEMENTS:
        matching = [speedup for query, speedup in served.items() if _same(query, statement)]
        best = max(matching, default=0.0)
        if best < MIN_PLANTED_SPEEDUP:
            missing.append(f"{statement} (best {best:.1f}x)")
    assert not slower, f"recommended but measured slower: {slower}"
    assert not missing, (
        f"planted statements without a recommended index of >= {MIN_PLANTED_SPEEDUP}x: {missing}"
    )
    print(f"every planted statement has a recommended index measured >= {MIN_PLANTED_SPEEDUP:g}x faster")
    if arguments.json is not None:
        arguments.json.write_text(report.model_dump_json(indent=2))


def _same(recorded: str, planted: str) -> bool:
    """pg_stat_statements' text of *planted*: the same words, ``$n`` where the driver bound ``%s`` (and
    where the statement had a constant, such as the LIMIT)."""
    recorded_words, planted_words = recorded.split(), " ".join(planted.split()).split()
    return len(recorded_words) == len(planted_words) and all(
        a == b or a.startswith("$") for a, b in zip(recorded_words, planted_words, strict=True)
    )


if __name__ == "__main__":
    main()
