from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from .sockets import on_signed_out

        user_logged_out.connect(on_signed_out, dispatch_uid="accounts.sockets.on_signed_out")
