"""What is checked before anything is created: settings that parse can still name a broker
nobody answers at or a pricing file that is not there. Found later, the first would leave
a job in the store that no worker hears of, the second a job without any cost."""

from __future__ import annotations

from ..config import Settings, uses_local_broker
from ..errors import SettingsError
from ..store import safe_url

__all__ = [
    "BROKER_CHECK_TIMEOUT_S",
    "check_before_creating",
    "require_reachable_broker",
    "require_readable_pricing",
]

BROKER_CHECK_TIMEOUT_S = 3.0  #: seconds to wait for the broker to answer a ping


def check_before_creating(settings: Settings) -> None:
    """Every check a command runs before it creates or sends anything."""
    require_readable_pricing(settings)
    require_reachable_broker(settings)


def require_readable_pricing(settings: Settings) -> None:
    """A `pricing_file` that is missing or broken is a one-line SettingsError."""
    from ..cost.pricing import price_table_for

    price_table_for(settings.pricing_file)


def require_reachable_broker(settings: Settings) -> None:
    """Raise a one-line SettingsError unless the broker answers (`memory://` always does)."""
    if uses_local_broker(settings):
        return
    import redis

    url = settings.celery.broker_url
    client = redis.Redis.from_url(
        url, socket_connect_timeout=BROKER_CHECK_TIMEOUT_S, socket_timeout=BROKER_CHECK_TIMEOUT_S
    )
    try:
        client.ping()
    except redis.RedisError as error:
        raise SettingsError(
            f"celery.broker_url: the broker at {safe_url(url)} does not answer ({error}); "
            "start Redis there or fix the URL. Nothing was created"
        ) from None
    finally:
        client.close()
