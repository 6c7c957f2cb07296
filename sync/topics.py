"""Sync topics, version 1 (pure; docs/reference/sync.md, "Topics").

Every topic a node publishes on is under its own name, ``<prefix>/v1/<node>/...``, so one
Mosquitto ACL line (``pattern write <prefix>/v1/%u/#``) lets each node publish only as itself::

    <prefix>/v1/<node>/head/<feed>         retained  the node's head of a feed it holds
    <prefix>/v1/<node>/cosig/<feed>        retained  its cosignature of that feed's checkpoint
    <prefix>/v1/<node>/live/<feed>                   new entries of its own feed, pushed live
    <prefix>/v1/<node>/req/<target>                  a range request to node <target>
    <prefix>/v1/<node>/resp/<requester>              answers to <requester>'s requests

``<feed>`` is 64 lowercase hex digits (the feed's public key); ``<node>`` a node id (no ``/``,
``+``, ``#``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["KINDS", "Topic", "Topics", "valid_node_name"]

KINDS = ("head", "cosig", "live", "req", "resp")
_NODE = re.compile(r"[^/+#\x00]{1,128}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def valid_node_name(name: str) -> bool:
    """Whether ``name`` can be one topic level (node ids are used as such)."""
    return bool(_NODE.fullmatch(name))


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed sync topic: who published (``node``), what kind, and about whom (``arg``)."""

    node: str
    kind: str
    arg: str


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics of one node (``me``) under ``prefix``."""

    prefix: str
    me: str

    @property
    def base(self) -> str:
        """``<prefix>/v1``."""
        return f"{self.prefix}/v1"

    def head(self, feed: str) -> str:
        """Where this node announces its head of ``feed``."""
        return f"{self.base}/{self.me}/head/{feed}"

    def cosig(self, feed: str) -> str:
        """Where this node publishes its cosignature of ``feed``'s checkpoint."""
        return f"{self.base}/{self.me}/cosig/{feed}"

    def live(self, feed: str) -> str:
        """Where this node pushes new entries of its own ``feed``."""
        return f"{self.base}/{self.me}/live/{feed}"

    def request(self, target: str) -> str:
        """Where this node sends range requests to ``target``."""
        return f"{self.base}/{self.me}/req/{target}"

    def response_to(self, target: str) -> str:
        """The response topic this node names in a request to ``target`` (``target``'s own)."""
        return f"{self.base}/{target}/resp/{self.me}"

    def subscriptions(self) -> list[str]:
        """What this node subscribes to."""
        b = self.base
        return [f"{b}/+/head/+", f"{b}/+/cosig/+", f"{b}/+/live/+", f"{b}/+/req/{self.me}",
                f"{b}/+/resp/{self.me}"]  # fmt: skip

    def parse(self, topic: str) -> Topic | None:
        """The parts of a sync topic, or None when it is not one (wrong shape or feed id)."""
        base = self.base + "/"
        if not topic.startswith(base):
            return None
        parts = topic[len(base) :].split("/")
        if len(parts) != 3 or parts[1] not in KINDS or not valid_node_name(parts[0]):
            return None
        node, kind, arg = parts
        if kind in ("head", "cosig", "live"):
            if not _HEX64.fullmatch(arg):
                return None
        elif not valid_node_name(arg):
            return None
        return Topic(node, kind, arg)
