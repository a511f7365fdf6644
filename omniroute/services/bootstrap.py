"""Start-up helpers shared by every process."""

from __future__ import annotations

import os
import stat

from omniroute.shared.auth import generate_key
from omniroute.shared.logging import configure_logging
from omniroute.shared.settings import Settings


def load_settings() -> Settings:
    settings = Settings()
    settings.validate_for_production()
    configure_logging(settings.app.log_level, settings.app.log_json)
    return settings


def admin_key(settings: Settings) -> str:
    """OMNIROUTE_ADMIN_KEY, or (outside production) a key generated once and kept on disk.

    Only the processes that serve the API ask for it, so classifier workers and migrations
    run without it.
    """
    if settings.auth.admin_key is not None and settings.auth.admin_key.get_secret_value().strip():
        return settings.auth.admin_key.get_secret_value().strip()
    if settings.app.env == "production":
        raise ValueError("OMNIROUTE_ADMIN_KEY must be set in production")
    path = settings.app.data_dir / "admin.key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    path.write_text(key + "\n")
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return key
