"""Pairwise comparison: one agreement level per configured field.

Each field's comparator returns the index of its level (``COMPARATOR_LEVELS`` order, most similar
first) or ``NULL`` when either side lacks the value, which then weighs nothing. Comparators work on
``Features`` only: identifiers as keyed hashes, names through their Latin/pinyin forms, dates by
parts. Fuzzy similarity comes from rapidfuzz (Jaro-Winkler for names, indel ratio for text).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence

from rapidfuzz.distance import Indel, JaroWinkler

from identity.config import FieldConfig, MatchingConfig
from identity.features import Features

NULL = -1
Comparator = Callable[[Features, Features], int]
Vector = tuple[int, ...]


def _fuzzy_levels(sim: float, high: float, low: float, base: int) -> int:
    if sim >= high:
        return base
    if sim >= low:
        return base + 1
    return base + 2


def _cjk_level(x: str, y: str) -> int | None:
    """Two 汉字 names of one length: a typo changes one character, a relative the given name."""
    if len(x) != len(y):
        return None
    differ = sum(1 for cx, cy in zip(x, y, strict=True) if cx != cy)
    if differ == 1:
        # 测试甲 / 测试乙 is one mistyped character; 张伟 / 张丽 is a whole given name.
        return 2 if len(x) >= 3 else 3
    return 4


class NameComparer:
    """Name agreement levels (``COMPARATOR_LEVELS["name"]``) for two records' features."""

    def __init__(self, high: float, low: float) -> None:
        self.high = high
        self.low = low

    def __call__(self, a: Features, b: Features) -> int:
        if not a.name_keys or not b.name_keys:
            return NULL
        if a.name is not None and a.name == b.name:
            return 0
        if not a.name_keys.isdisjoint(b.name_keys):
            return 1  # same letters in another order or script (测试甲 / JIA CESHI), homophones
        if a.cjk and b.cjk and a.name is not None and b.name is not None:
            level = _cjk_level(a.name, b.name)
            if level is not None:
                return level
        # Jaro-Winkler on pinyin rewards the shared surname, so it decides only across scripts,
        # for Latin names and for 汉字 names of different lengths.
        best = max(
            JaroWinkler.normalized_similarity(x, y) for x in a.name_forms for y in b.name_forms
        )
        return _fuzzy_levels(best, self.high, self.low, 2)


def _name(fc: FieldConfig) -> Comparator:
    return NameComparer(
        float(fc.params.get("fuzzy_high", 0.92)), float(fc.params.get("fuzzy_low", 0.82))
    )


def accounts_differ(a: Features, b: Features) -> bool:
    """Two accounts of one kind in one scope (two openids of one app, two cards of one brand):
    two people, as far as a shared phone is concerned."""
    if not a.accounts or not b.accounts:
        return False
    mine: dict[str, set[str]] = {}
    for group, digest in a.accounts:
        mine.setdefault(group, set()).add(digest)
    theirs: dict[str, set[str]] = {}
    for group, digest in b.accounts:
        theirs.setdefault(group, set()).add(digest)
    return any(mine[g].isdisjoint(theirs[g]) for g in mine.keys() & theirs.keys())


def persons_conflict(names: NameComparer, a: Features, b: Features) -> bool:
    """Do two records describe different people? Birthdays decide when both are known (a typo
    in one part of a date is no conflict); otherwise names that only share a surname do."""
    if a.birth is not None and b.birth is not None:
        return _date(a, b) >= 2
    level = names(a, b)
    return level != NULL and level >= 3


def _date(a: Features, b: Features) -> int:
    x, y = a.birth, b.birth
    if x is None or y is None:
        return NULL
    if x == y:
        return 0
    same = (x[0] == y[0]) + (x[1] == y[1]) + (x[2] == y[2])
    if same == 2 or (x[0] == y[0] and x[1] == y[2] and x[2] == y[1]):
        return 1  # one part mistyped, or day and month swapped
    if x[0] == y[0]:
        return 2
    return 3


def _identifier(fc: FieldConfig, hot: Container[str]) -> Comparator:
    kinds = tuple(fc.params["kinds"])

    def values(f: Features) -> list[str]:
        ids = f.ids
        out: list[str] = []
        for k in kinds:
            found = ids.get(k)
            if found:
                # a shared value (over its fan-out, or held by different people) is no evidence
                out.extend(h for h in found if h not in hot)
        return out

    def compare(a: Features, b: Features) -> int:
        if not a.ids or not b.ids:
            return NULL
        va = values(a)
        if not va:
            return NULL
        vb = values(b)
        if not vb:
            return NULL
        return 0 if any(h in vb for h in va) else 1

    return compare


def _address(a: Features, b: Features) -> int:
    if (a.city is None and a.province is None) or (b.city is None and b.province is None):
        return NULL
    if a.city is not None and a.city == b.city:
        if a.district is not None and a.district == b.district:
            return 0
        return 1
    if a.province is not None and a.province == b.province:
        return 2
    return 3


def _postcode(a: Features, b: Features) -> int:
    if a.postcode is None or b.postcode is None:
        return NULL
    return 0 if a.postcode == b.postcode else 1


def _text(fc: FieldConfig) -> Comparator:
    attr = str(fc.params["feature"])
    high = float(fc.params.get("fuzzy_high", 0.92))
    low = float(fc.params.get("fuzzy_low", 0.80))
    ratio = Indel.normalized_similarity

    def compare(a: Features, b: Features) -> int:
        x, y = getattr(a, attr), getattr(b, attr)
        if x is None or y is None:
            return NULL
        if x == y:
            return 0
        return _fuzzy_levels(ratio(x, y), high, low, 1)

    return compare


def _gender(a: Features, b: Features) -> int:
    if a.gender is None or b.gender is None:
        return NULL
    return 0 if a.gender == b.gender else 1


def _phone_mask(a: Features, b: Features) -> int:
    # Two full phones are already compared exactly; masks only speak when one side is masked.
    if not a.phone_masks or not b.phone_masks or ("phone" in a.ids and "phone" in b.ids):
        return NULL
    theirs = b.phone_masks
    return 0 if any(h in theirs for h in a.phone_masks) else 1


def _name_masked(a: Features, b: Features) -> int:
    if (
        a.name_masked is None
        or b.name_masked is None
        or (a.name is not None and b.name is not None)
    ):
        return NULL
    return 0 if a.name_masked == b.name_masked else 1


def build_comparators(
    config: MatchingConfig, hot: Container[str] = frozenset()
) -> tuple[Comparator, ...]:
    """Comparators for every configured field; ``hot`` holds identifier hashes over fan-out."""
    fixed: dict[str, Comparator] = {
        "date": _date,
        "address": _address,
        "postcode": _postcode,
        "gender": _gender,
        "phone_mask": _phone_mask,
        "name_masked": _name_masked,
    }
    made: dict[str, Callable[[FieldConfig], Comparator]] = {
        "name": _name,
        "identifier": lambda fc: _identifier(fc, hot),
        "text": _text,
    }
    out: list[Comparator] = []
    for fc in config.fields:
        out.append(fixed[fc.comparator] if fc.comparator in fixed else made[fc.comparator](fc))
    return tuple(out)


def compare(comparators: Sequence[Comparator], a: Features, b: Features) -> Vector:
    return tuple([c(a, b) for c in comparators])
