"""API tokens: django-rest-knox (hashed, expiring, one per signed-in client).

* ``issue(user)``: a new token for one client (the phone, a tablet, a script); the
  database keeps only its SHA-512 digest. At most API_TOKENS_PER_USER live at once: the
  oldest goes when a new one would pass the limit.
* A token expires API_TOKEN_IDLE_DAYS after its last use, and API_TOKEN_MAX_DAYS after
  sign-in whatever the use (knox's AUTO_REFRESH with AUTO_REFRESH_MAX_TTL).
* Signing out ends the caller's token only; ``logout-all`` ends every token of the user;
  a password change ends them all too (``revoke_on_password_change``).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from knox import auth as knox_auth
from knox.models import AuthToken
from rest_framework import exceptions


class TokenAuthentication(knox_auth.TokenAuthentication):
    """``Authorization: Token hsu_...``. A token that is not UTF-8 is refused as invalid
    (knox would fail decoding it: a 500)."""

    def authenticate_credentials(self, token: bytes):
        try:
            token.decode("utf-8")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return super().authenticate_credentials(token)


def issue(user) -> tuple[AuthToken, str]:
    """A new token for one client; the raw token is returned this once."""
    instance, raw = AuthToken.objects.create(user=user)
    keep = settings.API_TOKENS_PER_USER
    stale = list(AuthToken.objects.filter(user=user).order_by("-created").values_list("digest", flat=True)[keep:])
    if stale:
        AuthToken.objects.filter(digest__in=stale).delete()
    return instance, raw


def revoke_all(user) -> int:
    return AuthToken.objects.filter(user=user).delete()[0]


def revoke_on_password_change(sender, instance, update_fields=None, **kwargs) -> None:
    """pre_save of the user: a new password hash ends every API token of the user (Django
    already ends their other sessions through the session's auth hash)."""
    if instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    old = get_user_model().objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if old is not None and old != instance.password:
        revoke_all(instance)
