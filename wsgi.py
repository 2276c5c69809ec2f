"""WSGI entry point for any WSGI server: ``granian --interface wsgi wsgi:app``."""

from authserver import create_app
from authserver.serve import settle

app = settle(create_app())
