"""Settings for the mvrefresh example: one app, one PostgreSQL database.

The connection comes from the usual PG* environment variables (PGHOST, PGPORT, PGDATABASE,
PGUSER, PGPASSWORD), which libpq reads itself, so nothing secret lives here.
"""
import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["localhost"]
INSTALLED_APPS = ["polls"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        # Empty values leave the choice to libpq and the PG* variables.
        "NAME": os.environ.get("PGDATABASE", ""),
        "HOST": os.environ.get("PGHOST", ""),
        "PORT": os.environ.get("PGPORT", ""),
        "USER": os.environ.get("PGUSER", ""),
    }
}
