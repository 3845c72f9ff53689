from django.apps import AppConfig


class VoicePlatformConfig(AppConfig):
    name = "voiceplatform"
    verbose_name = "Voice Platform"

    def ready(self) -> None:
        # Every process (web, Celery worker and pool children, beat) passes here once.
        from voiceplatform import metrics, tracing

        metrics.configure_process()
        metrics.connect_celery_signals()
        tracing.configure_tracing()
