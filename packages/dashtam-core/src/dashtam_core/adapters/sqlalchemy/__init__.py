"""adapters sqlalchemy package."""
