"""On plain PostgreSQL, samples_1m becomes a view over raw rows (see ingest/storage.py)."""

from django.db import migrations


def forwards(apps, schema_editor):
    from ingest import storage

    with schema_editor.connection.cursor() as cur:
        if storage.installed_dialect(cur) != "postgres":
            return
        cur.execute("SELECT relkind FROM pg_class WHERE relname = 'samples_1m'")
        row = cur.fetchone()
        if row and row[0] == "r":
            cur.execute("DROP TABLE samples_1m")
        storage.install(cur, "postgres")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("ingest", "0002_samples_store")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
