"""Webhook signing secrets sealed at rest.

A signing secret must be recoverable to sign every request, so it cannot be hashed like an API
key. With OMNIROUTE_SECRETS_KEY set, it is stored sealed with Fernet (AES-CBC + HMAC, from the
`cryptography` package): a database dump, backup or read replica then holds no usable secret,
only the key in the router's configuration opens it. Several keys may be given, newest first
(MultiFernet): the newest seals, any opens, and `omniroute webhooks seal-secrets` re-seals every
secret with the newest (and seals those stored before a key was set).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

# Marks a stored value as sealed; anything else is a secret stored as issued.
SEALED_PREFIX = "fernet:"


class SealedSecretUnavailable(Exception):
    """A sealed secret that no configured key opens."""


class SecretSealer:
    def __init__(self, keys: SecretStr | None) -> None:
        raw = [k.strip() for k in keys.get_secret_value().split(",")] if keys else []
        fernets = [Fernet(k) for k in raw if k]
        self._newest = fernets[0] if fernets else None
        self._fernet = MultiFernet(fernets) if fernets else None

    @property
    def sealing(self) -> bool:
        return self._fernet is not None

    def seal(self, secret: str) -> str:
        """What to store for a secret: sealed with the newest key, or as is without keys."""
        if self._fernet is None:
            return secret
        return SEALED_PREFIX + self._fernet.encrypt(secret.encode()).decode()

    def unseal(self, stored: str) -> str:
        if not stored.startswith(SEALED_PREFIX):
            return stored
        if self._fernet is None:
            raise SealedSecretUnavailable(
                "the signing secret is sealed but OMNIROUTE_SECRETS_KEY is not set"
            )
        try:
            return self._fernet.decrypt(stored.removeprefix(SEALED_PREFIX).encode()).decode()
        except InvalidToken:
            raise SealedSecretUnavailable(
                "the signing secret was sealed with a key OMNIROUTE_SECRETS_KEY does not hold"
            ) from None

    def reseal(self, stored: str) -> str | None:
        """The value to store instead, sealed with the newest key; None if it already is."""
        if self._fernet is None:
            return None
        if not stored.startswith(SEALED_PREFIX):
            return self.seal(stored)
        token = stored.removeprefix(SEALED_PREFIX).encode()
        assert self._newest is not None
        try:
            self._newest.decrypt(token)
        except InvalidToken:
            # Sealed with an older key (rotate raises InvalidToken if none opens it).
            return SEALED_PREFIX + self._fernet.rotate(token).decode()
        return None


def new_key() -> str:
    return Fernet.generate_key().decode()
