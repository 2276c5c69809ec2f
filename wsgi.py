"""WSGI entry point for any WSGI server: ``granian --interface wsgi wsgi:app``."""

from authserver import create_app

app = create_app()
