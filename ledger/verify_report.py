"""What verifying found: :class:`Problem` (one thing wrong, at one seq), per feed and in all."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FeedReport", "Kind", "Problem", "Report"]


class Kind(enum.StrEnum):
    """What is wrong."""

    CHANGED = "changed content"
    BROKEN_LINK = "broken link"
    MISSING = "missing entry"
    BAD_SIGNATURE = "bad checkpoint signature"
    BAD_CHECKPOINT = "bad checkpoint"
    REORDERED = "reordered entries"
    ROLLBACK = "rollback below a checkpoint"
    UNSIGNED = "unsigned entries"
    INDEX_MISMATCH = "index mismatch"
    CHANGED_READINGS = "changed readings"
    CHECKPOINT_TABLE = "checkpoints table mismatch"
    MISSING_READINGS = "missing readings"
    BLOCK_ROW = "readings block row mismatch"
    UNCOVERED_READINGS = "readings not on the chain"
    UNTRUSTED = "untrusted feed"
    WRONG_OWNER = "wrong owner"
    UNWITNESSED = "too few witnesses"
    FORKED = "forked feed"
    BAD_FORK_RECORD = "bad fork record"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one feed, at one seq."""

    feed: str
    seq: int
    kind: Kind
    detail: str

    def __str__(self) -> str:
        return f"feed {self.feed[:16]} seq {self.seq}: {self.kind}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"feed": self.feed, "seq": self.seq, "kind": str(self.kind), "detail": self.detail}


@dataclass(slots=True)
class FeedReport:
    """What verifying one feed found."""

    feed: str
    entries: int = 0
    checkpoints: int = 0
    signed: int = 0  #: entries covered by a valid checkpoint signature
    #: readings blocks recorded as pruned, by reason (``retention``, ``operator:<actor>``)
    pruned: dict[str, int] = field(default_factory=dict)
    #: the feed's name on the trust list; None when trust was not checked or it is not trusted
    trusted_as: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


@dataclass(slots=True)
class Report:
    """What verifying a whole database found."""

    feeds: list[FeedReport] = field(default_factory=list)
    #: the feed that owns the file (``owner`` table), None when it does not say
    owner: str | None = None
    #: True when the feeds were checked against a trust list
    trust_checked: bool = False

    @property
    def ok(self) -> bool:
        """True when every feed verifies."""
        return all(f.ok for f in self.feeds)

    @property
    def problems(self) -> list[Problem]:
        """Every problem, feed by feed, in seq order."""
        return [p for f in self.feeds for p in f.problems]

    @property
    def entries(self) -> int:
        """Entries scanned in all feeds."""
        return sum(f.entries for f in self.feeds)
