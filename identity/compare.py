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


def _name(fc: FieldConfig) -> Comparator:
    high = float(fc.params.get("fuzzy_high", 0.92))
    low = float(fc.params.get("fuzzy_low", 0.82))
    jw = JaroWinkler.normalized_similarity

    def compare(a: Features, b: Features) -> int:
        if not a.name_keys or not b.name_keys:
            return NULL
        if a.name is not None and a.name == b.name:
            return 0
        if not a.name_keys.isdisjoint(b.name_keys):
            return 1  # same letters in another order or script (测试甲 / JIA CESHI), homophones
        best = max(jw(x, y) for x in a.name_forms for y in b.name_forms)
        return _fuzzy_levels(best, high, low, 2)

    return compare


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

    def values(f: Features) -> frozenset[str]:
        found = frozenset().union(*(f.ids.get(k, frozenset()) for k in kinds))
        # a value held by more records than its fan-out limit is a shared value: no evidence
        return frozenset(h for h in found if h not in hot) if found and hot else found

    def compare(a: Features, b: Features) -> int:
        va, vb = values(a), values(b)
        if not va or not vb:
            return NULL
        return 1 if va.isdisjoint(vb) else 0

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
    return 1 if a.phone_masks.isdisjoint(b.phone_masks) else 0


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
