"""The dashboard's Jinja2 environment: autoescape everywhere, and the filters the templates use."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from kansoku.web.auth import CSRF_FIELD, access_of
from kansoku.web.dashboard.charts import compact, duration, period
from kansoku.web.dashboard.present import span_status, span_title

__all__ = ["TEMPLATES_DIR", "ago", "make_templates", "render", "timestamp"]

TEMPLATES_DIR = Path(__file__).parent / "templates"
_NOT_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def timestamp(value: float | None) -> str:
    """Epoch seconds as '2024-05-01 12:34:56 UTC'."""
    if value is None:
        return "–"
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: float | None) -> str:
    """Epoch seconds as ISO 8601 (for <time datetime>)."""
    return "" if value is None else datetime.fromtimestamp(float(value), UTC).isoformat()


def ago(value: float | None, now: float | None = None) -> str:
    """How long before `now`: 'just now', '5 min ago', '3 h ago', '2 d ago'."""
    if value is None:
        return "never"
    seconds = (time.time() if now is None else now) - float(value)
    if seconds < 0:
        return "in the future"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def slug(value: Any) -> str:
    """A name made fit for an element id and a #fragment: runs of other characters become '-'."""
    return _NOT_SLUG.sub("-", str(value)).strip("-") or "-"


def pretty_json(value: Any) -> str:
    """Indented JSON for <pre> blocks."""
    return json.dumps(value, indent=2, default=str, ensure_ascii=False, sort_keys=True)


def query_string(items: Mapping[str, Any]) -> str:
    """'?a=1&b=2' from a mapping (empty string for no items)."""
    encoded = urlencode({k: v for k, v in items.items() if v is not None})
    return "?" + encoded if encoded else ""


def make_templates() -> Jinja2Templates:
    """Templates from the package folder; autoescape on for every template, whatever its name."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a typo in a template fails the tests, not silently
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ts=timestamp, iso=iso, ago=ago, compact=compact, duration=duration, period=period,
                       pretty_json=pretty_json, qs=query_string, slug=slug, todict=dict,
                       span_status=span_status, span_title=span_title)
    env.globals["csrf_field"] = CSRF_FIELD
    return Jinja2Templates(env=env)


def render(
    templates: Jinja2Templates, request: Request, name: str, context: Mapping[str, Any], *,
    status_code: int = 200, now: float | None = None,
) -> HTMLResponse:
    """Render a page with the values every page needs (prefix, access, CSRF token, clock)."""
    access = access_of(request.scope)
    base = {
        "request": request,
        "prefix": str(request.scope.get("root_path", "")).rstrip("/"),
        "access": access,
        "csrf_token": access.csrf_token,
        "now": time.time() if now is None else now,
        "done": request.query_params.get("done", ""),
    }
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)
