"""Constants and small helpers shared by the components."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

#: The Lambda runtime of every function (the layer is built for the same Python).
RUNTIME = "python3.13"
#: Component type tokens are ``omni:infra:<Component>``.
TYPE_PREFIX = "omni:infra"
#: Retention values CloudWatch Logs accepts, in days.
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)

PolicyStatement = dict[str, Any]


def physical_name(stage: str, name: str) -> str:
    """The deployed name of a declared table, queue, bus, function or secret."""
    return f"omni-{stage}-{name}"


def sid(*words: str) -> str:
    """An IAM statement id (alphanumeric only) from a few words: ``("read", "table x")`` -> ``ReadTableX``."""
    parts = re.split(r"[^A-Za-z0-9]+", " ".join(words))
    return "".join(part[:1].upper() + part[1:] for part in parts if part)


def policy_json(statements: Sequence[PolicyStatement]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


def assume_role_policy(service: str) -> str:
    """Trust policy letting one AWS service principal assume a role."""
    return policy_json(
        [
            {
                "Sid": "AssumeRole",
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
            }
        ]
    )


def check_log_retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(str(d) for d in sorted(LOG_RETENTION_DAYS))
        raise ValueError(f"log retention {days} days is not one CloudWatch accepts ({allowed})")
    return days
