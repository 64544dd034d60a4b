"""The detector worker owns no tables: alerts and detector settings live in ``alerts``;
detector state lives in the worker's own tables (RocksDB, see streams/app.py)."""
