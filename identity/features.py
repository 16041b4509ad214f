"""Per-record matching features: normalised attributes and keyed hashes of identifiers.

Identifiers are turned into keyed hashes here (``KeyRing.hash``: HMAC-SHA256 under the pepper), and
everything downstream matches on those digests, never on the plain value. Scoped kinds put their
scope into the hash, so an openid of app A can never equal an openid of app B. Full phones also
yield the hashes of their masked forms (``138****5678``, ``13*******01``) so a platform's masked
number can count as weak evidence against them without any plaintext comparison.

Only the last 22 base64 characters of each digest are kept (132 bits: collision-free for matching
at a million records, a third of the memory), and an identifier whose value is itself masked
(``t**1_mix``) is dropped and counted: a masked value is shared by many people and is never a key.

Names keep a comparable form in memory (fuzzy comparison cannot work on digests): the native
script, Latin token forms, and for Chinese names the pinyin (``测试甲`` → ``CESHI JIA`` /
``CE SHIJIA`` / ``CESHIJIA``) so that ``测试甲``, ``CESHI JIA`` and ``JIA CESHI`` meet.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from pypinyin import lazy_pinyin

from hub.core import normalize
from hub.core.pii import KeyRing
from hub.core.records import IdentifierKind, SourceRecord
from identity.config import MatchingConfig

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_NON_LETTER = re.compile(r"[^A-Z]+")
_MASK = re.compile(r"[*＊•●]")
_ADMIN_SUFFIX = re.compile(
    r"(特别行政区|维吾尔自治区|壮族自治区|回族自治区|自治区|自治州|省|市|区|县)$"
)


HASH_CHARS = 22  # base64 characters of a keyed hash kept in memory


def record_id(source: str, source_key: str) -> str:
    """A source record's identity: one node per (source, source_key); re-sending it updates it."""
    return f"{source}:{source_key}"


@dataclass(slots=True)
class Features:
    rid: str
    source: str
    observed_ts: float
    strong: tuple[tuple[str, str], ...] = ()  # (kind, keyed hash): deterministic join keys
    conflicts: tuple[tuple[str, str, float], ...] = ()  # (group, hash, verified_ts)
    accounts: tuple[tuple[str, str], ...] = ()  # (group, hash): one value per person per group
    ids: Mapping[str, frozenset[str]] = field(default_factory=dict)  # kind -> strong/medium hashes
    phone_masks: tuple[str, ...] = ()  # hashes of masked phone patterns (weak evidence)
    mask_blocks: tuple[str, ...] = ()  # those showing enough digits to block on
    name: str | None = None
    name_forms: tuple[str, ...] = ()  # Latin comparison forms (sorted tokens / pinyin variants)
    name_keys: frozenset[str] = frozenset()  # order- and script-insensitive equality keys
    name_key: str | None = None  # anagram of the letters: blocking key
    name_initial: str | None = None
    surname_key: str | None = None
    name_masked: str | None = None  # the visible leading character (a surname); weak
    cjk: bool = False  # the native name is written in 汉字 (compared character by character)
    tf_name: str | None = None
    birth: tuple[int, int, int] | None = None
    gender: str | None = None
    province: str | None = None
    city: str | None = None
    district: str | None = None
    postcode: str | None = None
    street: str | None = None
    placeholders: int = 0  # identifier/name values dropped as placeholders
    masked: int = 0  # identifier values dropped because they were masked (never a key)


@lru_cache(maxsize=262_144)
def _pinyin(text: str) -> tuple[str, ...]:
    return tuple(s.upper() for s in lazy_pinyin(text) if s.strip())


def _fold_latin(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()


def name_parts(raw: str) -> tuple[tuple[str, ...], frozenset[str], bool]:
    """(comparison forms, equality keys, is_chinese) for one written name."""
    text = normalize.name(raw)
    if _CJK.search(text):
        syl = _pinyin(text)
        if not syl:
            return (), frozenset(), True
        keys = {"".join(syl)}
        for k in range(1, len(syl)):
            keys.add(" ".join(sorted(("".join(syl[:k]), "".join(syl[k:])))))
        return tuple(sorted(keys)), frozenset(keys), True
    tokens = [t for t in _NON_LETTER.split(_fold_latin(text)) if t]
    if not tokens:
        return (), frozenset(), False
    form = " ".join(sorted(tokens))
    return (form,), frozenset({form, "".join(tokens), "".join(reversed(tokens))}), False


def _admin(value: str | None) -> str | None:
    if not value or _MASK.search(value):
        return None
    text = normalize.name(value)
    text = _ADMIN_SUFFIX.sub("", text) if _CJK.search(text) else _fold_latin(text)
    return text or None


def _phone_digits(e164: str) -> str:
    digits = e164.lstrip("+")
    return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits


class FeatureExtractor:
    """Turns ``SourceRecord``s into ``Features`` under one configuration and key ring."""

    def __init__(self, *, config: MatchingConfig, keyring: KeyRing) -> None:
        self.config = config
        self.keyring = keyring

    def _hash(self, kind: str, value: str, scope: str | None = None) -> str:
        # The digest's last 22 base64 characters (132 of 256 bits, key id dropped): as good as
        # collision-free for matching, at a third of the memory.
        return self.keyring.hash(kind, value, scope)[-HASH_CHARS:]

    def _mask_hashes(self, digits: str) -> set[tuple[str, int]]:
        out = set()
        for lead, trail in self.config.limits.phone_mask_styles:
            if len(digits) > lead + trail:
                pattern = (
                    digits[:lead]
                    + "*" * (len(digits) - lead - trail)
                    + digits[len(digits) - trail :]
                )
                out.add((self._hash("phone_mask", pattern), lead + trail))
        return out

    def extract(self, record: SourceRecord) -> Features:
        cfg = self.config
        f = Features(
            record_id(record.source, record.source_key),
            record.source,
            record.observed_at.timestamp(),
        )
        strong: list[tuple[str, str]] = []
        conflicts: list[tuple[str, str, float]] = []
        accounts: list[tuple[str, str]] = []
        ids: dict[str, set[str]] = {}
        masks: set[tuple[str, int]] = set()  # (hash, digits shown)
        for ident in record.identifiers:
            rule = cfg.keys[ident.kind]
            strength = rule.strength_of(verified=ident.verified)
            if strength == "none":
                continue
            if cfg.is_placeholder(ident.value):
                f.placeholders += 1
                continue
            if ident.kind is not IdentifierKind.PHONE_MASKED and _MASK.search(ident.value):
                # ``t**1_mix``, ``138****0000`` under another kind: shared by many people, so
                # it can be neither a join key nor exact-match evidence.
                f.masked += 1
                continue
            if ident.kind is IdentifierKind.PHONE_MASKED:
                try:
                    pattern = normalize.masked_phone_pattern(ident.value)
                except ValueError:
                    continue
                masks.add((self._hash("phone_mask", pattern), sum(c.isdigit() for c in pattern)))
                continue
            scope = ident.scope if rule.scoped else None
            digest = self._hash(ident.kind.value, ident.value, scope)
            if ident.kind is IdentifierKind.PHONE:
                masks |= self._mask_hashes(_phone_digits(ident.value))
            if strength in ("strong", "medium"):
                ids.setdefault(ident.kind.value, set()).add(digest)
            if strength == "strong":
                strong.append((ident.kind.value, digest))
                group = ident.kind.value + (f"@{ident.scope}" if scope else "")
                if ident.kind is IdentifierKind.ID_DOCUMENT:
                    # a passport and a resident ID of one person are no conflict
                    group = f"{ident.kind.value}:{ident.value.split(':', 1)[0]}"
                if rule.one_per_person or rule.conflict == "any":
                    # one value per person (per scope): two values say two people
                    accounts.append((group, digest))
                if rule.conflict != "none":
                    when = ident.verified_at or record.observed_at
                    conflicts.append((group, digest, when.timestamp()))
        f.strong = tuple(sorted(set(strong)))
        f.conflicts = tuple(sorted(set(conflicts)))
        f.accounts = tuple(sorted(set(accounts)))
        f.ids = {k: frozenset(v) for k, v in ids.items()}
        f.phone_masks = tuple(sorted(h for h, _ in masks))
        shown = cfg.limits.mask_block_digits
        f.mask_blocks = tuple(sorted(h for h, digits in masks if digits >= shown))
        self._names(record, f)
        if record.birthday is not None:
            b = record.birthday
            f.birth = (b.year, b.month, b.day)
        f.gender = record.gender.value if record.gender is not None else None
        if record.address is not None:
            a = record.address
            f.province, f.city, f.district = _admin(a.province), _admin(a.city), _admin(a.district)
            if a.detail and not _MASK.search(a.detail):
                f.street = _fold_latin(normalize.name(a.detail))
        postcode = record.attributes.get("postcode")
        if postcode:
            f.postcode = re.sub(r"\s+", "", postcode).upper() or None
        return f

    def _names(self, record: SourceRecord, f: Features) -> None:
        forms: set[str] = set()
        keys: set[str] = set()
        for raw in (record.name, record.name_latin):
            if not raw:
                continue
            compact = normalize.name(raw).replace(" ", "")
            if _MASK.search(raw):
                # Platforms keep the surname and star the rest (``张*``, ``张**``), and the
                # number of stars says nothing about the length: only the lead survives.
                if raw is record.name and compact and not _MASK.match(compact):
                    f.name_masked = compact[0]
                continue
            if raw.strip().lower() in self.config.placeholder_names:
                f.placeholders += 1
                continue
            part_forms, part_keys, chinese = name_parts(raw)
            forms.update(part_forms)
            keys.update(part_keys)
            if raw is record.name:
                f.name = normalize.name(raw)
                f.name_masked = compact[0]
                f.cjk = chinese
                if chinese:
                    first = _pinyin(compact[0])
                    f.surname_key = first[0] if first else None
                else:
                    # Western order ("given surname"); a swapped order still meets via name_key.
                    tokens = _NON_LETTER.sub(" ", _fold_latin(raw)).split()
                    f.surname_key = tokens[-1] if tokens else None
        if not keys:
            return
        f.name_forms = tuple(sorted(forms))
        f.name_keys = frozenset(keys)
        letters = "".join(sorted(min(keys).replace(" ", "")))
        f.name_key = letters or None
        f.name_initial = letters[:1] or None
        f.tf_name = f.name_key
