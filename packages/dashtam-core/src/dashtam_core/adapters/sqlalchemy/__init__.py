"""SQLAlchemy 2 async adapters: tables, mapping, repositories, unit of work, migrations."""
