"""The web view's routes: the runs page, a run page, the compare page, their JSON
endpoints, the login form and the static files, as one `APIRouter`.

Pages are server-rendered Jinja2 (autoescape on); the graph, timeline, node panel
and live updates are plain JavaScript from `static/`, fed JSON from `/view/api/...`.
Every stored string comes from runners, so it is hostile: templates escape it, the
scripts set `textContent` only, and a Content-Security-Policy allows no inline
script. Payloads are redacted as the JSON API redacts them. Nothing here writes.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.resources
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader

from ..._models import IoPayload, NodeExecution, seconds_between
from ..._paths import segment
from ..._redact import Redaction
from ...store import view_reads as reads
from ...store.base import Store
from . import model as vm
from .auth import COOKIE, LIFETIME, CookieSigner, safe_next
from .tree import page_tree

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""No inline script, no inline style attribute, nothing from elsewhere."""
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
PREVIEW_CHARS = 20_000
"""Payloads longer than this show their start, collapsed, with a download link."""
_TYPES = {".js": "text/javascript", ".css": "text/css", ".md": "text/plain", ".png": "image/png"}
_IDS = Query(default=[])
"""Run ids of /view/api/rows (repeatable `id`)."""
STATUSES = ("running", "completed", "failed", "paused", "skipped", "pending")


def _static_files() -> dict[str, tuple[bytes, str]]:
    """Every file of `static/`, read once: served from memory, no path from a request
    ever touches the file system."""
    files: dict[str, tuple[bytes, str]] = {}
    for entry in (
        importlib.resources.files(__package__ or "dagtrace.serve.view") / "static"
    ).iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _TYPES:
            files[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return files


def _when(value: Any) -> str:
    """An epoch as UTC for people."""
    if value is None:
        return "-"
    try:
        return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):
        return f"epoch {value!r}"


def _duration(start: Any, end: Any) -> str:
    seconds = seconds_between(start, end)
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _json(value: Any, status: int = 200) -> Response:
    return _secured(JSONResponse(value, status_code=status, headers={"Cache-Control": "no-store"}))


class _Guard:
    """Who may see the view: anyone without a token; with one, a bearer header or,
    on GET, a valid cookie."""

    def __init__(self, token: str | None) -> None:
        self.signer = CookieSigner(token) if token else None
        self._bearer = f"Bearer {token}".encode() if token else b""

    def allows(self, request: Request) -> bool:
        if self.signer is None:
            return True
        given = request.headers.get("authorization", "").encode("latin-1")
        if given and hmac.compare_digest(given, self._bearer):
            return True
        return request.method in ("GET", "HEAD") and self.signer.valid(request.cookies.get(COOKIE))

    def api(self, request: Request) -> None:
        if not self.allows(request):
            raise HTTPException(401, "log in at /login, or send the bearer token")


def view_router(
    store: Store,
    *,
    token: str | None = None,
    jaeger_url: str | None = None,
    redaction: Redaction | None = None,
    read_only: bool = False,
) -> APIRouter:
    """The web view over `store`, for `create_app` to include."""
    redaction = redaction or Redaction()
    guard = _Guard(token)
    static = _static_files()
    versions = {n: hashlib.sha256(b).hexdigest()[:10] for n, (b, _) in static.items()}
    env = Environment(loader=PackageLoader("dagtrace.serve.view", "templates"), autoescape=True)
    env.filters.update(when=_when, seg=segment)
    env.globals.update(
        duration=_duration,
        static=lambda name: f"/view/static/{name}?v={versions.get(name, '')}",
        statuses=STATUSES,
        login=guard.signer is not None,
        read_only=read_only,
    )
    router = APIRouter(include_in_schema=False)

    def page(template: str, status: int = 200, **context: Any) -> Response:
        html = env.get_template(template).render(**context)
        return _secured(
            HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
        )

    def gate(request: Request) -> Response | None:
        """A redirect to the login form when the request may not see the page."""
        if guard.allows(request):
            return None
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={segment(target)}", status_code=303)

    _static_routes(router, static)
    _login_routes(router, guard, page)
    _page_routes(router, store, guard, gate, page, jaeger_url)
    _api_routes(router, store, guard, redaction)
    return router


def _static_routes(router: APIRouter, static: dict[str, tuple[bytes, str]]) -> None:
    @router.get("/view/static/{name}")
    def static_file(name: str) -> Response:
        if name not in static:
            raise HTTPException(404, "no such file")
        body, media_type = static[name]
        headers = {"Cache-Control": "public, max-age=86400", **SECURITY_HEADERS}
        return Response(body, media_type=media_type, headers=headers)


def _login_routes(router: APIRouter, guard: _Guard, page: Callable[..., Response]) -> None:
    @router.get("/login")
    def login_form(next: str = "/") -> Response:
        return page("login.html", target=safe_next(next), error=None)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        target = safe_next(str(form.get("next") or "/"))
        given = str(form.get("token") or "")
        if guard.signer is None:
            return RedirectResponse(target, status_code=303)
        if not guard.signer.token_matches(given):
            return page("login.html", status=401, target=target, error="wrong token")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            guard.signer.make(),
            max_age=LIFETIME,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return _secured(response)

    @router.post("/logout")
    def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return _secured(response)


def _run_filter(
    status: str | None, nsref: str | None, contains: bool, run_id: str | None, **times: str | None
) -> reads.RunFilter:
    bounds = {k: _parse_time(v) for k, v in times.items() if k in ("since", "until")}
    return reads.RunFilter(
        status=status or None,
        nsref=nsref or None,
        nsref_contains=contains,
        run_id=run_id or None,
        since=bounds.get("since"),
        until=bounds.get("until"),
        top_level=not times.get("all"),
    )


def _parse_time(text: str | None) -> float | None:
    """A `datetime-local` value (taken as UTC) or epoch seconds; None if unusable."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _page_routes(
    router: APIRouter,
    store: Store,
    guard: _Guard,
    gate: Callable[[Request], Response | None],
    page: Callable[..., Response],
    jaeger_url: str | None,
) -> None:
    @router.get("/")
    def runs_page(
        request: Request,
        status: str | None = None,
        nsref: str | None = None,
        contains: bool = False,
        run_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        all: str | None = None,
        cursor: str | None = None,
        limit: int = Query(50, ge=1, le=500),
    ) -> Response:
        if (redirect := gate(request)) is not None:
            return redirect
        flt = _run_filter(status, nsref, contains, run_id, since=since, until=until, all=all)
        found = reads.list_runs_page(store, flt, limit=limit, cursor=cursor)
        query = {k: v for k, v in request.query_params.items() if k != "cursor" and v}
        return page("runs.html", page=found, flt=flt, query=query, args=request.query_params)

    @router.get("/runs/{run_id:segment}")
    def run_page(request: Request, run_id: str) -> Response:
        if (redirect := gate(request)) is not None:
            return redirect
        row = store.get_run(run_id)
        if row is None:
            return page("missing.html", status=404, what="run", name=run_id)
        found = store.get_run_details(run_id) if reads.has_extras(store) else None
        details: Mapping[str, Any] = found or {}
        previous = reads.previous_run(store, row["dag_nsref"], row["started_at"], run_id)
        boot = {"run_id": run_id, "jaeger_url": jaeger_url, "status": row["status"]}
        return page(
            "run.html",
            run=row,
            details=details,
            replays=reads.replays_of(store, run_id),
            previous=previous,
            jaeger_url=(jaeger_url or "").rstrip("/") or None,
            boot=boot,
        )

    @router.get("/compare")
    def compare_page(request: Request, a: str = "", b: str = "") -> Response:
        if (redirect := gate(request)) is not None:
            return redirect
        return page("compare.html", a=a, b=b, boot={"a": a, "b": b})


def _run_tree(store: Store, run_id: str) -> dict[str, Any] | None:
    """A run page's data: the tree, critical path, root cause."""
    rows = reads.tree_rows(store, run_id)
    return None if rows is None else vm.page_data(page_tree(rows, run_id))


def _redacted_io(io: IoPayload, redaction: Redaction) -> IoPayload:
    """The payloads as the JSON API shows them: its own redaction, reused."""
    from ..._models import DagRun
    from ..api import redacted_run

    node = NodeExecution(node_label="n", status="completed", io=io)
    run = DagRun(run_id="r", dag_nsref="n", status="completed", started_at=datetime.now(UTC))
    run.nodes = {"n": node}
    redacted = redacted_run(run, redaction).nodes["n"].io
    return redacted or IoPayload()


def _payload_view(text: str | None) -> dict[str, Any]:
    pretty = vm.pretty_json(text)
    return {
        "present": text is not None,
        "size": len(text.encode()) if text is not None else 0,
        "preview": pretty[:PREVIEW_CHARS],
        "truncated": len(pretty) > PREVIEW_CHARS,
    }


def _api_routes(router: APIRouter, store: Store, guard: _Guard, redaction: Redaction) -> None:
    def allowed(request: Request) -> None:
        guard.api(request)

    @router.get("/view/api/rows")
    def rows(request: Request, id: list[str] = _IDS) -> Response:
        """Runs-page rows of these runs, for refreshing running ones in place."""
        allowed(request)
        return _json(reads.runs_by_id(store, id[:200]))

    @router.get("/view/api/runs/{run_id:segment}/version")
    def version(request: Request, run_id: str) -> Response:
        """A fingerprint of the run tree: the page reloads its data when it changes."""
        allowed(request)
        return _json({"version": reads.tree_fingerprint(store, run_id)})

    @router.get("/view/api/runs/{run_id:segment}")
    def run_data(request: Request, run_id: str) -> Response:
        allowed(request)
        data = _run_tree(store, run_id)
        if data is None:
            return _json({"detail": "no such run"}, 404)
        if data["run"]["status"] in ("running", "pending"):  # the base of its polling
            data["version"] = reads.tree_fingerprint(store, run_id)
        return _json(data)

    @router.get("/view/api/runs/{run_id:segment}/nodes/{label:segment}")
    def node(request: Request, run_id: str, label: str) -> Response:
        allowed(request)
        row = reads.node_row(store, run_id, label)
        run = store.get_run(run_id)
        if row is None or run is None:
            return _json({"detail": "no such node"}, 404)
        io = _redacted_io(
            IoPayload(input_json=row["input_json"], output_json=row["output_json"]), redaction
        )
        history = reads.node_history(store, run["dag_nsref"], label)
        return _json(
            {
                "run_id": run_id,
                "nsref": run["dag_nsref"],
                "label": label,
                **{k: row[k] for k in ("status", "started_at", "finished_at", "error")},
                **{k: row[k] for k in reads.NODE_EXTRAS},
                "input": _payload_view(io.input_json),
                "output": _payload_view(io.output_json),
                "history": history,
            }
        )

    @router.get("/view/api/runs/{run_id:segment}/nodes/{label:segment}/payload")
    def payload(request: Request, run_id: str, label: str, part: str = "output") -> Response:
        """A node's input or output as a file (redacted)."""
        allowed(request)
        row = reads.node_row(store, run_id, label)
        if row is None or part not in ("input", "output"):
            return _json({"detail": "no such payload"}, 404)
        io = _redacted_io(
            IoPayload(input_json=row["input_json"], output_json=row["output_json"]), redaction
        )
        text = (io.input_json if part == "input" else io.output_json) or "null"
        disposition = f'attachment; filename="{part}.json"'
        headers = {"Content-Disposition": disposition, **SECURITY_HEADERS}
        return Response(text, media_type="application/json", headers=headers)

    @router.get("/view/api/compare")
    def compare(request: Request, a: str, b: str) -> Response:
        allowed(request)
        run_a, run_b = _run_tree(store, a), _run_tree(store, b)
        if run_a is None or run_b is None:
            return _json({"detail": "no such run"}, 404)
        ids = [n["run_id"] for d in (run_a, run_b) for n in vm.walk(d["run"])]
        outputs = reads.outputs_of(store, sorted(set(ids)))
        side = _replayed_side(store, a, b)
        diff = vm.compare(run_a["run"], run_b["run"], outputs, replayed_side=side)
        return _json({"a": _summary(run_a), "b": _summary(run_b), "replay": side, **diff})

    @router.get("/view/api/compare/node")
    def compare_node(request: Request, a: str, b: str, path: str) -> Response:
        allowed(request)
        texts = []
        for run_id in (a, b):
            data = _run_tree(store, run_id)
            node = next(vm.find_nodes(data["run"], {path}), None) if data else None
            row = reads.node_row(store, node["run_id"], node["label"]) if node else None
            out = row["output_json"] if row else None
            texts.append(_redacted_io(IoPayload(output_json=out), redaction).output_json)
        return _json({"path": path, "rows": vm.side_by_side(texts[0], texts[1])})


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    run = data["run"]
    return {k: run[k] for k in ("run_id", "nsref", "status", "started_at", "finished_at")}


def _replayed_side(store: Store, a: str, b: str) -> str | None:
    """Which of the two runs replays the other, if either does."""
    if not reads.has_extras(store):
        return None
    da: Mapping[str, Any] = store.get_run_details(a) or {}
    db: Mapping[str, Any] = store.get_run_details(b) or {}
    if db.get("replay_of_run_id") == a:
        return "b"
    if da.get("replay_of_run_id") == b:
        return "a"
    return None
