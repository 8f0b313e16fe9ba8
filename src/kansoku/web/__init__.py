"""kansoku's surfaces on the web: the dashboard, the JSON API, their auth, Slack's actions.

The middleware that observes the app is an entry point, in `kansoku.runtime`.
"""

from kansoku.web import _ids  # noqa: F401 - registers the `{name:id}` path convertor of the routes
