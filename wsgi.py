"""WSGI entry point for gunicorn or any WSGI server: ``gunicorn wsgi:app``."""

from authserver import create_app

app = create_app()
