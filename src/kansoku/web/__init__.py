"""kansoku on the web: the ASGI middleware, the JSON API and the dashboard."""
