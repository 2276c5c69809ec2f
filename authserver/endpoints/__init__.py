"""HTTP endpoints (blueprints): parse, call a grant or a service, render."""
