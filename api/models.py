"""The API owns no tables: its views serve the models of ``care``, ``alerts``,
``ingest``, ``forecasting`` and ``coaching``."""
