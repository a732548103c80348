"""What an agent's capacity item can refuse, raised by the repositories that write it.

Apart from :mod:`shared.repositories.agents` (which reads the agents table's name from the
environment) so that the conversation's writes can raise it in functions that have no agents
table (every function that imports the conversations repository).
"""

from __future__ import annotations


class AgentUnavailable(Exception):
    """The agent is not available or has no free capacity (their ``take`` condition failed)."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"agent {agent_id} is not available or is at capacity")
        self.agent_id = agent_id
