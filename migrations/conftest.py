"""env.py runs only inside Alembic (it needs alembic.context), so pytest must not import it."""

collect_ignore = ["env.py", "versions"]
