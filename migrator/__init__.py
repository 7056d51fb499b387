"""yomu-migrate: safe, observable PostgreSQL schema migrations for the yomu API."""

__version__ = "0.1.0"
