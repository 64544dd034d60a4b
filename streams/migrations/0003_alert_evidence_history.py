from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("streams", "0002_alert_event_seq")]

    operations = [
        migrations.AlterField(
            model_name="alert", name="evidence",
            field=models.JSONField(default=dict, help_text="the evidence at the alert's peak: when it first reached its highest severity (what a clinician judges it by)"),
        ),
        migrations.AddField(
            model_name="alert", name="raise_evidence",
            field=models.JSONField(default=dict, help_text="the evidence when it was raised"),
        ),
        migrations.AddField(
            model_name="alert", name="latest_evidence",
            field=models.JSONField(default=dict, help_text="the evidence of the latest update"),
        ),
        migrations.AddField(
            model_name="alert", name="latest_severity",
            field=models.CharField(blank=True, choices=[("info", "info"), ("yellow", "yellow"), ("red", "red")], help_text="the severity of the latest update (``severity`` is the highest reached)", max_length=12),
        ),
        migrations.RunSQL(
            "UPDATE streams_alert SET raise_evidence = evidence, latest_evidence = evidence, "
            "latest_severity = severity",
            migrations.RunSQL.noop,
        ),
    ]
