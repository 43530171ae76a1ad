"""Pure stage functions: typed model in, typed model out, no Celery, no database (STYLE.md 1).

May import `core` and `schemas` only.
"""
