"""The web view over HTTP, from a real `dagtrace serve` process: security headers, no
inline script, redaction, where the login cookie is accepted, read-only serving of a
lythonic file, and the templates and static files in the wheel."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
from traced_pipeline import run_pipeline
from view_helpers import serving, traced

ROOT = Path(__file__).parent.parent
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)


def _secret_run(tracer: Any) -> None:
    with tracer.run("secrets", run_id="s-1", inputs={"login": {"password": "hunter2"}}) as run:
        with run.node("login", input={"password": "hunter2", "user": "ann"}, is_source=True) as n:
            n.set_output({"token": "tok-123", "ok": True, "big": "x" * 50_000})


def test_pages_forbid_inline_script_and_link_to_jaeger(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    traced(db, run_pipeline, run_id="run-1", fail_publish=True)
    with serving(db, "--jaeger-url", "http://jaeger.test:16686/") as url:
        for path in ("/", "/runs/run-1", "/compare?a=run-1&b=run-1", "/login", "/runs/nope"):
            answer = httpx.get(url + path)
            assert answer.status_code == (404 if path == "/runs/nope" else 200), path
            csp = answer.headers["content-security-policy"]
            assert "script-src 'self';" in csp and "unsafe-inline" not in csp
            assert answer.headers["x-content-type-options"] == "nosniff"
            for attributes in SCRIPT_TAG.findall(answer.text):
                assert "src=" in attributes or 'type="application/json"' in attributes, path
            assert not re.search(r"<[^>]+\son[a-z]+=", answer.text), path  # no handler attribute
        page = httpx.get(url + "/runs/run-1").text
        trace_id = httpx.get(url + "/api/v1/runs/run-1/details").json()["trace_id"]
        assert f'href="http://jaeger.test:16686/trace/{trace_id}"' in page
        data = httpx.get(url + "/view/api/runs/run-1").json()
        assert data["root_cause"] == "publish"
        sub_id = data["run"]["nodes"][1]["subs"][0]["run"]["run_id"]
        sub_page = httpx.get(url + f"/runs/{sub_id}").text
        assert 'href="/runs/run-1"' in sub_page  # the parent run
        assert data["critical"][-1] == "publish"
        static = httpx.get(url + "/view/static/dagre.min.js")
        assert static.headers["content-type"].startswith("text/javascript")
        assert httpx.get(url + "/view/static/..%2Fview.py").status_code == 404


def test_payloads_are_redacted_as_the_api_redacts_them(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    traced(db, _secret_run)
    with serving(db) as url:
        node = httpx.get(url + "/view/api/runs/s-1/nodes/login").json()
        api = httpx.get(url + "/api/v1/runs/s-1", params={"io": "true"}).json()
        shown = json.loads(api["nodes"]["login"]["io"]["input_json"])
        assert json.loads(node["input"]["preview"]) == shown
        assert "hunter2" not in node["input"]["preview"] and "ann" in node["input"]["preview"]
        assert node["output"]["truncated"] and "tok-123" not in node["output"]["preview"]
        whole = httpx.get(url + "/view/api/runs/s-1/nodes/login/payload", params={"part": "output"})
        assert "attachment" in whole.headers["content-disposition"]
        assert "tok-123" not in whole.text and len(json.loads(whole.text)["big"]) == 50_000
        assert node["history"][-1]["run_id"] == "s-1"


def test_the_login_cookie_opens_the_view_only_on_get(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    traced(db, run_pipeline, run_id="run-1")
    with serving(db, "--token", "tok-abc") as url:
        with httpx.Client(base_url=url) as anon:
            first = anon.get("/runs/run-1")
            assert first.status_code == 303
            assert first.headers["location"] == "/login?next=%2Fruns%2Frun-1"
            assert anon.get("/view/api/runs/run-1").status_code == 401
            assert anon.post("/login", data={"token": "nope", "next": "/"}).status_code == 401
            bearer = {"Authorization": "Bearer tok-abc"}
            assert anon.get("/view/api/runs/run-1", headers=bearer).status_code == 200
            anon.cookies.set("dagtrace_view", "99999999999.AAAA")  # forged
            assert anon.get("/").status_code == 303
        with httpx.Client(base_url=url) as browser:
            login = browser.post("/login", data={"token": "tok-abc", "next": "//evil.example"})
            assert login.status_code == 303 and login.headers["location"] == "/"
            set_cookie = login.headers["set-cookie"].lower()
            for flag in ("httponly", "samesite=strict", "max-age=43200", "path=/"):
                assert flag in set_cookie
            assert browser.get("/runs/run-1").status_code == 200
            assert browser.get("/view/api/runs/run-1").status_code == 200
            # never beyond the view's GET reads
            assert browser.get("/api/v1/runs").status_code == 401
            assert browser.get("/metrics").status_code == 401
            body: dict[str, list[Any]] = {"resourceSpans": []}
            assert browser.post("/v1/traces", json=body).status_code == 401
            logout = browser.post("/logout")
            assert 'dagtrace_view=""' in logout.headers["set-cookie"]
            assert "max-age=0" in logout.headers["set-cookie"].lower()
            assert browser.get("/").status_code == 303


def test_a_lythonic_file_served_read_only_is_left_untouched(tmp_path: Path) -> None:
    from lythonic.compose import dag_provenance as lythonic_provenance
    from scenarios import run_all

    db = tmp_path / "lythonic.db"
    run_ids = run_all(lythonic_provenance.DagProvenance(db))
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    with serving(db, "--read-only") as url:
        runs = httpx.get(url + "/").text
        for run_id in run_ids.values():
            if httpx.get(url + f"/api/v1/runs/{run_id}/record").json()["parent_run_id"] is None:
                assert run_id[:8] in runs
        linear = run_ids["linear"]
        assert httpx.get(url + f"/runs/{linear}").status_code == 200
        data = httpx.get(url + f"/view/api/runs/{linear}").json()
        assert {n["status"] for n in data["run"]["nodes"]} == {"completed"}
        label = data["run"]["nodes"][0]["label"]
        assert httpx.get(url + f"/view/api/runs/{linear}/nodes/{label}").status_code == 200
        compare = httpx.get(url + "/view/api/compare", params={"a": linear, "b": linear})
        assert compare.json()["status_changes"] == []
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_the_wheel_holds_the_templates_and_static_files(tmp_path: Path) -> None:
    """Built offline (no build isolation: setuptools and wheel come from the test extra)."""
    source = tmp_path / "src-copy"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    offline = ["--no-deps", "--no-build-isolation", "--no-index"]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *offline, "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").glob("dagtrace-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "src" / "dagtrace" / "serve" / "view"
    expected = [
        f"dagtrace/serve/view/{folder}/{f.name}"
        for folder in ("templates", "static")
        for f in (package / folder).iterdir()
    ]
    assert expected and set(expected) <= names
    assert "dagtrace/serve/view/static/dagre.min.js" in names


def test_run_ids_and_labels_that_are_not_path_safe_open(tmp_path: Path) -> None:
    def odd_run(tracer: Any) -> None:
        with tracer.run("odd", run_id="a/b?c#d %2F ..") as run:
            with run.node("x/y?.", input=1, is_source=True) as n:
                n.set_output(2)

    db = tmp_path / "odd.db"
    traced(db, odd_run)
    with serving(db) as url:
        href = re.search(r'href="(/runs/[^"]+)"', httpx.get(url + "/").text)
        assert href is not None
        assert httpx.get(url + href.group(1)).status_code == 200
        api = "/view/api/runs/" + href.group(1).removeprefix("/runs/")
        data = httpx.get(url + api).json()
        assert data["run"]["run_id"] == "a/b?c#d %2F .."
        node = httpx.get(url + api + "/nodes/x%2Fy%3F%2E").json()
        assert node["label"] == "x/y?." and node["output"]["preview"] == "2"
