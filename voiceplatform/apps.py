from django.apps import AppConfig


class VoicePlatformConfig(AppConfig):
    name = "voiceplatform"
    verbose_name = "Voice Platform"
