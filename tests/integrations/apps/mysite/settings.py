"""A small Django project's settings: auth on, no database needed by the views."""

SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware", "mysite.views.HeaderLogin"]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
