"""The identity operations' typed errors (every one a ``HubError`` with a stable ``code``).

HubError
└── IdentityError
    ├── MemberNotFound / SourceRecordNotFound / ReviewItemNotFound
    ├── AlreadyMerged           the member was merged into another (or is the same member)
    ├── MemberErased            the member's PII was erased
    ├── ConflictingStrongKeys   both sides hold different values of a conflict-checked key
    ├── ReviewAlreadyResolved
    ├── NothingToUnmerge        no earlier state differs from the current one
    └── ReasonRequired
"""

from __future__ import annotations

from hub.core.errors import HubError

MAX_REASON = 500


class IdentityError(HubError):
    code = "IDENTITY_ERROR"


class MemberNotFound(IdentityError):
    code = "MEMBER_NOT_FOUND"

    def __init__(self, member_id: int) -> None:
        super().__init__(f"member {member_id} does not exist")
        self.member_id = member_id


class SourceRecordNotFound(IdentityError):
    code = "SOURCE_RECORD_NOT_FOUND"

    def __init__(self, record_id: int) -> None:
        super().__init__(f"source record {record_id} does not exist or was erased")
        self.record_id = record_id


class ReviewItemNotFound(IdentityError):
    code = "REVIEW_ITEM_NOT_FOUND"

    def __init__(self, item_id: int) -> None:
        super().__init__(f"review item {item_id} does not exist")
        self.item_id = item_id


class AlreadyMerged(IdentityError):
    code = "ALREADY_MERGED"

    def __init__(self, member_id: int, into: int | None) -> None:
        where = f"into member {into}" if into else "already"
        super().__init__(f"member {member_id} was merged {where}")
        self.member_id = member_id
        self.into = into


class MemberErased(IdentityError):
    code = "MEMBER_ERASED"

    def __init__(self, member_id: int) -> None:
        super().__init__(f"member {member_id} was erased")
        self.member_id = member_id


class ConflictingStrongKeys(IdentityError):
    code = "CONFLICTING_STRONG_KEYS"

    def __init__(self, kind: str) -> None:
        super().__init__(f"the two sides hold different {kind} values; they are different people")
        self.kind = kind


class ReviewAlreadyResolved(IdentityError):
    code = "REVIEW_ALREADY_RESOLVED"

    def __init__(self, item_id: int, status: str) -> None:
        super().__init__(f"review item {item_id} is already {status}")
        self.item_id = item_id
        self.status = status


class NothingToUnmerge(IdentityError):
    code = "NOTHING_TO_UNMERGE"


class ReasonRequired(IdentityError):
    code = "REASON_REQUIRED"

    def __init__(self) -> None:
        super().__init__(f"a reason (1-{MAX_REASON} characters) is required")
