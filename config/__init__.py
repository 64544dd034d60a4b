"""Project settings package: Django settings, the Celery app and URL routing."""
