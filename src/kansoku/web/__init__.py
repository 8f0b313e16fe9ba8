"""kansoku's surfaces on the web: the dashboard, the JSON API, their auth, Slack's actions.

The middleware that observes the app is an entry point, in `kansoku.runtime`.
"""
