"""``make serve``'s first half: a local Prefect server, unless one answers already.

SQLite under ~/.prefect, telemetry off, on 127.0.0.1:4200. Prints the UI address once it is healthy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ADDRESS = "http://127.0.0.1:4200"
_WAIT_SECONDS = 90


def healthy() -> bool:
    try:
        with urllib.request.urlopen(f"{ADDRESS}/api/health", timeout=2) as response:  # noqa: S310 (fixed http URL)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main() -> None:
    if not healthy():
        prefect = Path(sys.executable).with_name("prefect")
        subprocess.run(
            [str(prefect), "server", "start", "--background", "--host", "127.0.0.1", "--port", "4200"],
            env={**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _WAIT_SECONDS
        while not healthy():
            if time.monotonic() > deadline:
                sys.exit(f"the local Prefect server did not answer on {ADDRESS} within {_WAIT_SECONDS} s")
            time.sleep(0.5)
    print(f"Prefect UI: {ADDRESS} (stop the server with: prefect server stop)")


if __name__ == "__main__":
    main()
