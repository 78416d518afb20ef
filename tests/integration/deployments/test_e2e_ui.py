"""End to end, as the users meet dbops: a real Prefect server, ``dbops serve``, the Prefect UI in
headless Chromium driven by Playwright (an operator starting a rehearsal from the form), and the
deploy pipeline's ``prefect deployment run ... --watch`` exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from models.settings import Settings
from tasks.backup.dump import backup
from tasks.postgres.embedded import free_port
from tasks.storage import open_store
from tests.conftest import require_tool
from tests.integration.conftest import REPO_ROOT, connect, server_directory, url_string

pytestmark = pytest.mark.e2e
SCREENSHOTS = REPO_ROOT / ".e2e-screenshots"
#: Flags that keep Chromium from reaching for the network at start (there is none to reach here).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class Stack:
    ui: str
    environment: dict[str, str]


def _wait_healthy(api: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the Prefect server exited"
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2):  # noqa: S310 (loopback http)
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    pytest.fail(f"the Prefect server did not answer within {seconds:g} s")


@pytest.fixture
def stack(seeded_url: URL, settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    """``prefect server start`` (SQLite of its own) and ``dbops serve`` against it."""
    port = free_port()
    ui, api = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/api"
    prefect = str(Path(sys.executable).with_name("prefect"))
    with server_directory() as prefect_home:
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith(("DBOPS_", "PREFECT_"))
        }
        environment |= {
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_API_URL": api,
            "PREFECT_UI_API_URL": api,
            "DBOPS_DATABASE_URL": url_string(seeded_url),
            "DBOPS_BACKUP_URL": str(tmp_path / "backups"),
            "DBOPS_HOME": str(settings.home),
            "DBOPS_BCRYPT_ROUNDS": "4",
            "PYTHONWARNINGS": "ignore",
        }
        server = subprocess.Popen(
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        served = None
        try:
            _wait_healthy(api, server, 120)
            served = subprocess.Popen(
                [str(Path(sys.executable).with_name("dbops")), "serve"],
                cwd=REPO_ROOT,
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            yield Stack(ui=ui, environment=environment)
        finally:
            for process in (served, server):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=30)


def _deployment_run(stack: Stack, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("prefect")),
            "deployment",
            "run",
            name,
            "--watch",
            "--watch-timeout",
            "240",
        ],
        env=stack.environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _wait_for_deployments(stack: Stack) -> None:
    """``dbops serve`` registers the deployments a moment after it starts."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        listed = subprocess.run(
            [str(Path(sys.executable).with_name("prefect")), "deployment", "ls"],
            env=stack.environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if "restore-rehearsal" in listed.stdout and "migrate-and-seed" in listed.stdout:
            return
        time.sleep(1)
    pytest.fail("dbops serve did not register its deployments")


def test_an_operator_rehearses_a_backup_from_the_ui_form(
    seeded_url: URL, settings: Settings, tmp_path: Path, stack: Stack
) -> None:
    chromium = require_tool("chromium", "the UI test drives Debian's Chromium through Playwright")
    from playwright.sync_api import expect, sync_playwright

    local = settings.model_copy(update={"backup_url": str(tmp_path / "backups")})
    backup_id = backup(seeded_url, local, open_store(local)).backup_id  # the one typed into the form
    newer = backup(seeded_url, local, open_store(local)).backup_id  # what "latest" would have taken
    _wait_for_deployments(stack)
    SCREENSHOTS.mkdir(exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{stack.ui}/deployments")
            page.get_by_text("restore-rehearsal", exact=True).first.click()
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_text("Custom run").click()
            expect(
                page.get_by_text("The backup to rehearse (an id from dbops backups), or latest.")
            ).to_be_visible()
            field = page.locator("textarea").first
            field.fill(backup_id)
            page.screenshot(path=str(SCREENSHOTS / "restore-rehearsal-form.png"), full_page=True)
            run_name = page.locator("input").first.input_value()
            page.get_by_role("button", name="Submit").click()
            page.wait_for_url("**?tab=Runs", timeout=30_000)  # back on the deployment, the run listed
            page.get_by_text(run_name, exact=True).first.click()
            page.wait_for_url("**/runs/flow-run/**", timeout=30_000)
            expect(page.get_by_text("Completed").first).to_be_visible(timeout=180_000)
            page.locator("li.p-tab#artifacts").click()
            expect(page.get_by_text("restore-rehearsal").first).to_be_visible(timeout=30_000)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(SCREENSHOTS / "restore-rehearsal-run.png"), full_page=True)
        finally:
            browser.close()

    record = (tmp_path / "backups" / "backups" / backup_id / "rehearsal.json").read_text()
    assert '"passed": true' in record
    assert not (tmp_path / "backups" / "backups" / newer / "rehearsal.json").exists()
    for name in ("restore-rehearsal-form.png", "restore-rehearsal-run.png"):
        assert (SCREENSHOTS / name).read_bytes().startswith(b"\x89PNG")


def test_the_deploy_pipeline_reads_the_exit_code_of_migrate_and_seed(seeded_url: URL, stack: Stack) -> None:
    _wait_for_deployments(stack)

    passing = _deployment_run(stack, "migrate-and-seed/migrate-and-seed")

    assert passing.returncode == 0, passing.stdout[-2000:] + passing.stderr[-2000:]
    with connect(seeded_url) as connection:  # a trigger the seed cannot overrule: validation fails
        connection.execute(
            "CREATE FUNCTION keep_unverified() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.is_verified := false; RETURN NEW; END $$"
        )
        connection.execute(
            "CREATE TRIGGER keep_unverified BEFORE INSERT OR UPDATE ON universities "
            "FOR EACH ROW EXECUTE FUNCTION keep_unverified()"
        )
        connection.execute("UPDATE universities SET is_verified = false")

    failing = _deployment_run(stack, "migrate-and-seed/migrate-and-seed")

    assert failing.returncode == 1, failing.stdout[-2000:] + failing.stderr[-2000:]
    assert "Failed" in failing.stdout + failing.stderr


def _start_restore(page: Any, stack: Stack, target: str) -> None:
    """The operator's form: target and its confirmation; backup latest, swap and approval as given."""
    from playwright.sync_api import expect

    page.goto(f"{stack.ui}/deployments")
    page.get_by_text("restore", exact=True).first.click()
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Custom run").click()
    expect(page.get_by_text("Type the target's name again; otherwise nothing happens.")).to_be_visible()
    fields = page.locator("textarea")
    fields.nth(0).fill(target)
    fields.nth(1).fill(target)
    run_name = page.locator("input").first.input_value()
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url("**?tab=Runs", timeout=90_000)
    # The runs list shows a new run at its next refresh, which a loaded machine delays.
    page.get_by_role("link", name=run_name, exact=True).first.click(timeout=90_000)
    page.wait_for_url("**/runs/flow-run/**", timeout=90_000)


def _answer(page: Any, decision: str, screenshot: Path | None) -> None:
    """On the paused run's page: read the summary, choose, and resume.

    The test's Prefect server keeps its state in SQLite, which answers 503 while another writer holds
    it; the UI then shows the error and the run stays paused, and the operator submits again. So does
    the test, once: a second refusal fails it."""
    from playwright.sync_api import expect

    badge = page.locator(".state-badge").first
    for attempt in range(2):
        expect(badge).to_have_text("Paused", timeout=240_000)
        page.get_by_role("button", name="Resume").first.click()
        expect(page.get_by_text("Rows per table").first).to_be_visible(timeout=30_000)
        expect(page.get_by_role("cell", name="applications", exact=True)).to_be_visible()
        if decision == "approve":
            page.get_by_role("switch").last.click()
        expect(page.get_by_role("switch").last).to_be_checked(checked=decision == "approve")
        page.locator("textarea").last.fill(f"{decision}d in the browser test")
        if screenshot is not None and attempt == 0:
            page.screenshot(path=str(screenshot), full_page=True)
        page.get_by_role("button", name="Submit").last.click()
        try:
            expect(badge).not_to_have_text("Paused", timeout=60_000)
            return
        except AssertionError:
            if attempt:
                raise
            page.reload()


def test_an_operator_approves_one_restore_and_rejects_another_in_the_ui(
    seeded_url: URL, settings: Settings, tmp_path: Path, stack: Stack
) -> None:
    chromium = require_tool("chromium", "the UI test drives Debian's Chromium through Playwright")
    from playwright.sync_api import expect, sync_playwright

    local = settings.model_copy(update={"backup_url": str(tmp_path / "backups")})
    manifest = backup(seeded_url, local, open_store(local))
    target = str(seeded_url.database)
    with connect(seeded_url) as connection:  # the accident: one university's applications deleted
        connection.execute(
            "DELETE FROM applications WHERE course_id IN "
            "(SELECT id FROM courses WHERE university_id = (SELECT id FROM universities ORDER BY id LIMIT 1))"
        )
    _wait_for_deployments(stack)
    SCREENSHOTS.mkdir(exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            _start_restore(page, stack, target)
            _answer(page, "approve", SCREENSHOTS / "restore-approval.png")
            expect(page.locator(".state-badge").first).to_have_text("Completed", timeout=240_000)
            with connect(seeded_url) as connection:
                restored = connection.execute("SELECT count(*) FROM applications").fetchone()
            assert restored == (manifest.row_counts["applications"],)

            with connect(seeded_url) as connection:  # a second accident, and a restore rejected
                connection.execute("DELETE FROM applications")
            _start_restore(page, stack, target)
            _answer(page, "reject", None)
            expect(page.locator(".state-badge").first).to_have_text("Cancelled", timeout=120_000)
        finally:
            browser.close()

    with connect(seeded_url) as connection:
        assert connection.execute("SELECT count(*) FROM applications").fetchone() == (0,)
        copies = connection.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE %s", (f"{target}\\_restoring\\_%",)
        ).fetchone()
    assert copies == (0,)
    # docs/restore-approval.png in the README is a copy of this one.
    assert (SCREENSHOTS / "restore-approval.png").read_bytes().startswith(b"\x89PNG")
