"""The dashboard: server-rendered pages over the store, mounted under the kansoku prefix.

Templates (Jinja2, autoescaped) and static assets (CSS, one small script, no CDN) ship inside the
package; charts are inline SVG drawn on the server. `kansoku.web.app.build_web_app` wires it.
"""

from __future__ import annotations

from kansoku.web.dashboard.context import DashboardContext
from kansoku.web.dashboard.routes import dashboard_routes

__all__ = ["DashboardContext", "dashboard_routes"]
