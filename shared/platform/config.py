"""Settings a function reads from its environment, checked once at cold start."""

from __future__ import annotations

import os


class ConfigurationError(RuntimeError):
    """A required environment variable is missing: the deployment is broken, not the request."""


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(f"environment variable {name} is not set")
    return value


def get_secret(env_var: str) -> str:
    """The value of the secret whose id is in ``env_var``.

    Read through Powertools Parameters, which caches it for five minutes: in the cloud
    from Secrets Manager; locally the runtime stores the ``OMNI_*`` values in the
    emulated Secrets Manager, so this is the same code path.
    """
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415 - cold-start cost on use only

    value = parameters.get_secret(require_env(env_var), max_age=300)
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def clear_secret_cache() -> None:
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415

    parameters.clear_caches()
