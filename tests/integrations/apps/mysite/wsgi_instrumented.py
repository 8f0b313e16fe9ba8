"""The manual way in: `wsgi.py` with the one line docs/frameworks/django.md shows."""

import os

from django.core.wsgi import get_wsgi_application

import kansoku

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
application = kansoku.instrument(get_wsgi_application())
