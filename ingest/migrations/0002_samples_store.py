"""Create the samples store (hypertable + continuous aggregates, or partitions + rollups)."""

from django.db import migrations


def install(apps, schema_editor):
    from ingest import storage

    with schema_editor.connection.cursor() as cur:
        storage.install(cur)


def uninstall(apps, schema_editor):
    with schema_editor.connection.cursor() as cur:
        cur.execute("DROP VIEW IF EXISTS samples_1m")
        for name in ("sleep_nightly", "samples_1d", "samples_1h", "samples_1m"):
            cur.execute(f"DROP TABLE IF EXISTS {name} CASCADE")
        cur.execute("DROP TABLE IF EXISTS samples CASCADE")
        cur.execute("DROP TABLE IF EXISTS storage_dialect")


class Migration(migrations.Migration):
    atomic = False  # TimescaleDB creates continuous aggregates outside a transaction

    dependencies = [("ingest", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall)]
