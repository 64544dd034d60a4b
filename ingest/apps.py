from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "ingest"
    verbose_name = "Ingest: schema, Kafka, sink, storage, importers"

    def ready(self) -> None:
        from django.db import transaction
        from django.db.models.signals import post_delete

        from ingest import uploads
        from ingest.models import ImportJob

        def _discard_file(sender, instance: ImportJob, **_kwargs) -> None:
            # a job deleted (alone, or with its patient) takes its waiting upload with it,
            # once the deletion commits (a rolled-back deletion keeps the file)
            path = instance.stored_path
            if path:
                transaction.on_commit(lambda: uploads.discard(path))

        post_delete.connect(_discard_file, sender=ImportJob, weak=False,
                            dispatch_uid="ingest.importjob.discard_file")
