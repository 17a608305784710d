"""Take README's screenshot of the web view: a run page of the example pipeline.

    python scripts/screenshot.py [--out docs/run-page.png]

Runs `examples/lythonic_pipeline.py` into a temporary store, serves it with
`dagtrace serve`, opens its first run in headless Chromium (Debian's `chromium`,
through Playwright) with the `publish` node selected, and saves the page.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import dagtrace

ROOT = Path(__file__).parent.parent


def _first_run(db: Path) -> str:
    """The example's first run (restarted to completion; the replay is the other)."""
    with dagtrace.DagProvenance(db) as prov:
        runs = prov.get_recent_runs(10)
        return next(
            r.run_id for r in runs if r.parent_run_id is None and prov.store.get_replays(r.run_id)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "run-page.png")
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "dagtrace.db"
        example = ROOT / "examples" / "lythonic_pipeline.py"
        subprocess.run(
            [sys.executable, str(example), "--db", str(db)], check=True, capture_output=True
        )
        run_id = _first_run(db)
        serve = [sys.executable, "-m", "dagtrace", "serve", "--db", str(db), "--port", "0"]
        server = subprocess.Popen(
            [*serve, "--jaeger-url", "http://localhost:16686"], stdout=subprocess.PIPE, text=True
        )
        assert server.stdout is not None
        try:
            url = server.stdout.readline().split("listening on ")[1].split()[0]
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=shutil.which("chromium"),
                    headless=True,
                    args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
                )
                page = browser.new_page(viewport={"width": 1400, "height": 820})
                page.goto(f"{url}/runs/{run_id}?node=publish")
                expect(page.locator("#panel-label")).to_have_text("publish")
                page.screenshot(path=str(args.out))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
            server.stdout.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
