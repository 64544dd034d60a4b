import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
if not settings.SECRET_KEY_SET:
    # the API never serves with an empty key, nor with the built-in one (DEBUG off)
    raise ImproperlyConfigured(settings.SECRET_KEY_MISSING)
application = get_wsgi_application()
