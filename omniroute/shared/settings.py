"""Settings, one class per concern, read from OMNIROUTE_* environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

import phonenumbers
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "placeholder"}

# 5s, 30s, 2m, 10m, 30m, 1h, 2h, 4h, 8h, 8h, 8h: 12 attempts over about 31.7 hours.
WEBHOOK_RETRY_SCHEDULE = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800, 28800)


def _config(prefix: str = "OMNIROUTE_") -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", env_file=None)


class AppSettings(BaseSettings):
    model_config = _config()

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    log_level: str = "INFO"
    log_json: bool = False
    # Where a phone number without a country code is read (ISO 3166 alpha-2); empty: such
    # numbers are refused (the contacts API answers 422, channels keep them as provider ids).
    default_phone_region: str | None = "ES"

    @field_validator("default_phone_region")
    @classmethod
    def _known_region(cls, region: str | None) -> str | None:
        if not region:
            return None
        region = region.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{region!r} is not a region phonenumbers knows (ISO 3166 alpha-2)")
        return region


class DatabaseSettings(BaseSettings):
    model_config = _config()

    database_url: str = "sqlite:///var/omniroute.db"
    database_pool_size: int = 10
    database_echo: bool = False

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        """Accept plain URLs and pick the async driver we ship."""
        if url.startswith("sqlite://"):
            return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                return "postgresql+asyncpg://" + url.removeprefix(plain)
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


class BusSettings(BaseSettings):
    model_config = _config()

    bus: str = "inprocess://"
    bus_client_id: str = "omniroute"
    bus_partitions: int = 6
    bus_send_timeout_seconds: float = 10.0
    bus_handler_attempts: int = 5
    # How long Kafka keeps the messages of the topics the services create (retention.ms).
    # Contacts carry personal data: erasure deletes what the database holds, and the topics
    # forget the rest after this. Topics that exist already keep their own setting.
    bus_retention_hours: float = Field(default=168.0, gt=0)
    # How clients reach Kafka (aiokafka's names). SSL verifies the brokers against the system's
    # CAs, or bus_ssl_cafile; a client certificate (certfile, with keyfile unless it holds the
    # key) for brokers that ask for one. SASL_* logs in with the mechanism, user and password.
    bus_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    bus_ssl_cafile: Path | None = None
    bus_ssl_certfile: Path | None = None
    bus_ssl_keyfile: Path | None = None
    bus_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    bus_sasl_username: str | None = None
    bus_sasl_password: SecretStr | None = None

    @model_validator(mode="after")
    def _security_complete(self) -> BusSettings:
        protocol = self.bus_security_protocol
        if protocol.startswith("SASL") and not (self.bus_sasl_username and self.bus_sasl_password):
            raise ValueError(
                f"OMNIROUTE_BUS_SECURITY_PROTOCOL={protocol} needs OMNIROUTE_BUS_SASL_USERNAME "
                "and OMNIROUTE_BUS_SASL_PASSWORD"
            )
        tls_files = (self.bus_ssl_cafile, self.bus_ssl_certfile, self.bus_ssl_keyfile)
        if not protocol.endswith("SSL") and any(tls_files):
            raise ValueError(
                "OMNIROUTE_BUS_SSL_* files are set but OMNIROUTE_BUS_SECURITY_PROTOCOL is "
                f"{protocol}: use SSL or SASL_SSL"
            )
        if self.bus_ssl_keyfile and not self.bus_ssl_certfile:
            raise ValueError("OMNIROUTE_BUS_SSL_KEYFILE needs OMNIROUTE_BUS_SSL_CERTFILE")
        return self

    @field_validator("bus")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("inprocess://", "kafka://")):
            raise ValueError("OMNIROUTE_BUS must be inprocess:// or kafka://host:port[,host:port]")
        return url

    @property
    def is_kafka(self) -> bool:
        return self.bus.startswith("kafka://")

    @property
    def bootstrap_servers(self) -> str:
        return self.bus.removeprefix("kafka://").rstrip("/")


class AuthSettings(BaseSettings):
    model_config = _config()

    admin_key: SecretStr | None = None
    key_cache_seconds: float = 30.0


class GatewaySettings(BaseSettings):
    model_config = _config()

    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    max_batch: int = 500
    meta_app_secret: SecretStr | None = None
    meta_verify_token: SecretStr | None = None
    public_url: str | None = None  # as providers see us, for signature schemes over the URL
    max_email_bytes: int = Field(default=25 * 1024 * 1024, gt=0)  # raw e-mail paths and SMTP
    smtp_port: int | None = None  # the SMTP listener's port; None: no listener
    smtp_host: str = "127.0.0.1"
    # STARTTLS on the SMTP listener: the certificate chain (with its key, or keyfile) that
    # senders see; with require, nothing but EHLO, STARTTLS and QUIT before TLS.
    smtp_tls_certfile: Path | None = None
    smtp_tls_keyfile: Path | None = None
    smtp_require_starttls: bool = False
    x_consumer_secret: SecretStr | None = None
    twilio_auth_token: SecretStr | None = None
    mailgun_signing_key: SecretStr | None = None

    @model_validator(mode="after")
    def _smtp_tls_complete(self) -> GatewaySettings:
        if self.smtp_tls_keyfile and not self.smtp_tls_certfile:
            raise ValueError("OMNIROUTE_SMTP_TLS_KEYFILE needs OMNIROUTE_SMTP_TLS_CERTFILE")
        if self.smtp_require_starttls and not self.smtp_tls_certfile:
            raise ValueError(
                "OMNIROUTE_SMTP_REQUIRE_STARTTLS needs a certificate: OMNIROUTE_SMTP_TLS_CERTFILE"
            )
        return self


class RouterSettings(BaseSettings):
    model_config = _config()

    offer_timeout_seconds: float = Field(default=30.0, gt=0)
    dispatch_interval_seconds: float = Field(default=1.0, gt=0)
    # After a kick, wait this long so a burst of new work shares one dispatch pass.
    dispatch_coalesce_seconds: float = Field(default=0.02, ge=0)
    long_poll_max_seconds: float = 60.0
    routing_rules_path: Path | None = None
    reopen_window_hours: float = 72.0
    # Customer notices: brand, templates (a YAML file over the shipped defaults), SLA warning.
    brand_name: str = "Omniroute"
    brand_timezone: str = "Europe/Madrid"
    templates_path: Path | None = None
    sla_warning_fraction: float = Field(default=0.8, gt=0.0, lt=1.0)
    notification_interval_seconds: float = Field(default=1.0, gt=0)
    # Outbound webhooks. Seconds to wait before each retry after a failed attempt (JSON list);
    # the default spans about 31.7 hours; when it is exhausted the delivery is dead-lettered.
    webhook_retry_schedule: list[float] = Field(
        default_factory=lambda: [float(delay) for delay in WEBHOOK_RETRY_SCHEDULE]
    )
    webhook_retry_jitter: float = Field(default=0.1, ge=0.0, le=1.0)  # +/- fraction of a delay
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_poll_interval_seconds: float = Field(default=1.0, gt=0)
    webhook_batch_size: int = Field(default=50, gt=0)
    webhook_concurrency: int = Field(default=10, gt=0)
    # Deliveries connect to public internet addresses only unless this is on (a receiver on a
    # laptop or inside the deployment's network); see omniroute/router/webhooks/egress.py.
    webhook_allow_private_networks: bool = False
    # Fernet keys sealing webhook signing secrets in the database, comma-separated, newest
    # first (older ones still open what they sealed; `omniroute webhooks seal-secrets` moves
    # every secret to the newest). Unset: secrets are stored as issued.
    secrets_key: SecretStr | None = None

    @field_validator("secrets_key")
    @classmethod
    def _fernet_keys(cls, keys: SecretStr | None) -> SecretStr | None:
        if keys is None or not keys.get_secret_value().strip():
            return None
        from cryptography.fernet import Fernet

        for key in keys.get_secret_value().split(","):
            try:
                Fernet(key.strip())
            except ValueError:
                raise ValueError(
                    "OMNIROUTE_SECRETS_KEY holds a key that is not a Fernet key (32 url-safe "
                    "base64-encoded bytes; make one with `omniroute webhooks new-key`)"
                ) from None
        return keys

    # A claimed delivery whose worker died is taken over after this long (> the timeout).
    webhook_claim_seconds: float = Field(default=120.0, gt=0)
    # Event-log ids re-read behind each endpoint's cursor: a safety net for ids committed out
    # of order (see omniroute/router/webhooks/service.py).
    webhook_fanout_lookback: int = Field(default=1000, ge=0)
    # PostgreSQL: how long a writer transaction may hold back the fan-out before the lookback
    # alone is relied on for it.
    webhook_horizon_max_wait_seconds: float = Field(default=60.0, gt=0)

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _non_negative_delays(cls, delays: list[float]) -> list[float]:
        if any(delay < 0 for delay in delays):
            raise ValueError("OMNIROUTE_WEBHOOK_RETRY_SCHEDULE delays must be >= 0 seconds")
        return delays


class ClassifierSettings(BaseSettings):
    model_config = _config("OMNIROUTE_CLASSIFIER_")

    model_dir: Path | None = None
    threshold: float = 0.35
    timezone: str = "Europe/Madrid"


class Settings:
    """All concerns together; each part validates on first use at start-up."""

    @cached_property
    def app(self) -> AppSettings:
        return AppSettings()

    @cached_property
    def database(self) -> DatabaseSettings:
        return DatabaseSettings()

    @cached_property
    def bus(self) -> BusSettings:
        return BusSettings()

    @cached_property
    def auth(self) -> AuthSettings:
        return AuthSettings()

    @cached_property
    def gateway(self) -> GatewaySettings:
        return GatewaySettings()

    @cached_property
    def router(self) -> RouterSettings:
        return RouterSettings()

    @cached_property
    def classifier(self) -> ClassifierSettings:
        return ClassifierSettings()

    def validate_for_production(self) -> None:
        """Placeholder or empty secrets fail fast outside development."""
        if self.app.env != "production":
            return
        for name, secret in (
            ("OMNIROUTE_ADMIN_KEY", self.auth.admin_key),
            ("OMNIROUTE_META_APP_SECRET", self.gateway.meta_app_secret),
            ("OMNIROUTE_META_VERIFY_TOKEN", self.gateway.meta_verify_token),
            ("OMNIROUTE_X_CONSUMER_SECRET", self.gateway.x_consumer_secret),
            ("OMNIROUTE_TWILIO_AUTH_TOKEN", self.gateway.twilio_auth_token),
            ("OMNIROUTE_MAILGUN_SIGNING_KEY", self.gateway.mailgun_signing_key),
            ("OMNIROUTE_BUS_SASL_PASSWORD", self.bus.bus_sasl_password),
            ("OMNIROUTE_SECRETS_KEY", self.router.secrets_key),
        ):
            if secret is None:
                continue
            value = secret.get_secret_value().strip()
            if not value or value.lower() in PLACEHOLDER_SECRETS:
                raise ValueError(f"{name} is empty or a placeholder; set a real secret")
