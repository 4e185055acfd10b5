from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "incidents.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"
