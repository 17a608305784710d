"""The web view: pages that show each run as a DAG (graph, timeline, live), served by
`dagtrace serve` beside the query API.

    pages.py     the routes (`view_router`): pages, their JSON, static files, login
    auth.py      the login cookie: stateless, signed with a key derived from the token
    model.py     what a page shows, computed on the server: critical path, root cause,
                 map aggregation, compare
    tree.py      a run's tree as the page draws it, built from rows
    templates/   Jinja2 pages (autoescaped); static/: the JavaScript, CSS, vendored dagre

A new page is a route in `pages.py`, a template, and its script in `static/`. Every
stored string is hostile: it reaches the page as escaped text or as JSON read with
`textContent`, never through `innerHTML`; the Content-Security-Policy forbids inline
script.
"""

from .pages import view_router

__all__ = ["view_router"]
