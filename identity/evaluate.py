"""Quality as a number: pairwise precision / recall / F1 of a partition against true pairs.

``run_evaluation(records_csv, truth_csv, mapping=None, config=None)`` reads a labelled set,
trains the model on it (EM, as a real run would), resolves it in batch and scores the clusters:

- R.csv: ``source,source_id`` plus attribute columns. A mapping TOML names them (see
  ``MAPPING_HELP``); without one, common headers are recognised (given_name/surname, name,
  date_of_birth, phone, email, national_id/soc_sec_id, street/address_1, city/suburb, state,
  postcode, sex, and any identifier kind such as ``wechat_unionid``).
- T.csv: ``source_id_a,source_id_b`` for every true pair.

Pairs are counted after clustering: every pair inside a predicted cluster is "found".
"""

from __future__ import annotations

import contextlib
import csv
import re
import time
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from hub.core import normalize
from hub.core.errors import ConfigError, ImportFormatError
from hub.core.pii import KeyRing
from hub.core.records import Address, Gender, Identifier, IdentifierKind, SourceRecord
from identity.config import load_config
from identity.resolver import Partition, Resolver

MAPPING_HELP = """\
[columns]                     # canonical field = CSV column, or a list of columns joined by a space
name = ["given_name", "surname"]
birthday = "date_of_birth"
phone = "phone_number"
email = "email"
id_document = "soc_sec_id"
street = ["street_number", "address_1", "address_2"]
city = "suburb"
province = "state"
postcode = "postcode"
gender = "sex"
[options]
region = "CN"                 # default region for phones without a country code
date_format = "%Y%m%d"        # optional; otherwise common layouts are tried
phone_verified = false        # treat phones as verified (strong keys)
id_document_type = "NATIONAL_ID"
"""

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "given_name": ("given_name", "first_name", "firstname", "forename", "名"),
    "surname": ("surname", "last_name", "lastname", "family_name", "姓"),
    "name": ("name", "full_name", "fullname", "姓名"),
    "name_latin": ("name_latin", "pinyin", "拼音"),
    "birthday": ("birthday", "date_of_birth", "dob", "birth_date", "生日", "出生日期"),
    "phone": ("phone", "phone_number", "mobile", "telephone", "手机", "手机号"),
    "email": ("email", "e_mail", "邮箱"),
    "id_document": ("id_document", "national_id", "id_number", "soc_sec_id", "ssn", "身份证"),
    "street": ("street", "address", "address_1", "street_address", "详细地址"),
    "street2": ("address_2",),
    "street_number": ("street_number", "house_number"),
    "city": ("city", "suburb", "town", "市"),
    "province": ("province", "state", "region", "省"),
    "district": ("district", "区"),
    "postcode": ("postcode", "zip", "zipcode", "postal_code", "邮编"),
    "gender": ("gender", "sex", "性别"),
}
_CANONICAL = (*_SYNONYMS, *(k.value for k in IdentifierKind))
_GENDER = {
    "f": Gender.FEMALE,
    "female": Gender.FEMALE,
    "女": Gender.FEMALE,
    "m": Gender.MALE,
    "male": Gender.MALE,
    "男": Gender.MALE,
}
_SLUG_BAD = re.compile(r"[^a-z0-9_]+")


@dataclass(frozen=True)
class EvaluationResult:
    precision: float
    recall: float
    f1: float
    pairs_true: int
    pairs_found: int
    clusters: int
    max_cluster: int
    seconds: float

    def format(self) -> str:
        return (
            f"precision={self.precision:.4f} recall={self.recall:.4f} f1={self.f1:.4f} "
            f"pairs_true={self.pairs_true} pairs_found={self.pairs_found} "
            f"clusters={self.clusters} max_cluster={self.max_cluster} seconds={self.seconds:.2f}"
        )


def pairwise_metrics(
    clusters: Iterable[Iterable[str]],
    true_pairs: Iterable[tuple[str, str]],
    *,
    seconds: float = 0.0,
) -> EvaluationResult:
    label: dict[str, int] = {}
    found = 0
    n_clusters = 0
    biggest = 0
    for i, cluster in enumerate(clusters):
        members = list(cluster)
        n_clusters += 1
        biggest = max(biggest, len(members))
        found += len(members) * (len(members) - 1) // 2
        for m in members:
            label[m] = i
    truth = {(a, b) if a < b else (b, a) for a, b in true_pairs if a != b}
    hits = sum(1 for a, b in truth if a in label and label.get(a) == label.get(b))
    precision = hits / found if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return EvaluationResult(precision, recall, f1, len(truth), found, n_clusters, biggest, seconds)


def _mapping(
    path: Path | str | None, header: list[str]
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    lower = {h.strip().lower(): h for h in header}
    if path is None:
        cols: dict[str, list[str]] = {}
        for canon in _CANONICAL:
            for syn in _SYNONYMS.get(canon, (canon,)):
                if syn in lower:
                    cols[canon] = [lower[syn]]
                    break
        return cols, {}
    try:
        data = tomllib.loads(Path(path).read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"mapping {str(path)!r}: cannot be read ({exc})\nexpected:\n{MAPPING_HELP}"
        ) from None
    columns = data.get("columns", {})
    out: dict[str, list[str]] = {}
    for canon, spec in columns.items():
        if canon not in _CANONICAL:
            raise ConfigError(
                f"mapping columns.{canon}: unknown field (one of {', '.join(_CANONICAL)})"
            )
        names = [spec] if isinstance(spec, str) else spec
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"mapping columns.{canon}: must be a column name or a list of names")
        missing = [n for n in names if n not in header]
        if missing:
            raise ImportFormatError(
                f"mapping columns.{canon}: column(s) {', '.join(missing)} not in the file"
            )
        out[canon] = names
    return out, dict(data.get("options", {}))


def _birthday(raw: str, fmt: str | None) -> date | None:
    try:
        if fmt:
            return datetime.strptime(raw, fmt).replace(tzinfo=UTC).date()
        if re.fullmatch(r"\d{8}", raw):
            return datetime.strptime(raw, "%Y%m%d").replace(tzinfo=UTC).date()
        return normalize.parse_date(raw)
    except ValueError:
        return None


def _records(path: Path | str, mapping: Path | str | None) -> Iterator[SourceRecord]:
    seen = datetime(2024, 1, 1, tzinfo=UTC)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in reader.fieldnames or []]
        if "source_id" not in header:
            raise ImportFormatError("records CSV needs a source_id column (and usually source)")
        cols, opts = _mapping(mapping, header)
        region = str(opts.get("region", "CN"))
        verified = bool(opts.get("phone_verified", False))
        doc_type = str(opts.get("id_document_type", "NATIONAL_ID"))
        for row in reader:

            def get(canon: str, r: dict[str, str] = row) -> str | None:
                parts = [normalize.clean_cell(r.get(c)) for c in cols.get(canon, ())]
                text = " ".join(p for p in parts if p)
                return text or None

            source = _SLUG_BAD.sub(
                "_", (normalize.clean_cell(row.get("source")) or "csv").lower()
            ).strip("_")
            if not source or not source[0].isalpha():
                source = "s_" + source
            ids = []
            for canon, kind, fn in (
                ("phone", IdentifierKind.PHONE, lambda v: normalize.phone_e164(v, region)),
                ("email", IdentifierKind.EMAIL, normalize.email),
                (
                    "id_document",
                    IdentifierKind.ID_DOCUMENT,
                    lambda v: normalize.document_number(doc_type, v),
                ),
            ):
                raw = get(canon)
                if raw:
                    # an unusable value (bad phone, masked ID) is simply absent evidence
                    with contextlib.suppress(ValueError):
                        ids.append(
                            Identifier(
                                kind, fn(raw), verified=verified and kind is IdentifierKind.PHONE
                            )
                        )
            for kind in IdentifierKind:
                raw = (
                    get(kind.value) if kind.value not in ("phone", "email", "id_document") else None
                )
                if raw:
                    ids.append(Identifier(kind, raw, scope="default"))
            name = (
                get("name") or " ".join(p for p in (get("given_name"), get("surname")) if p) or None
            )
            street = (
                " ".join(p for p in (get("street_number"), get("street"), get("street2")) if p)
                or None
            )
            city, province, district = get("city"), get("province"), get("district")
            address = (
                Address(province, city, district, street)
                if any((city, province, district, street))
                else None
            )
            bday = get("birthday")
            sex = (get("gender") or "").lower()
            postcode = get("postcode")
            yield SourceRecord(
                source=source[:32],
                source_key=normalize.clean_cell(row["source_id"]) or "?",
                business_line=source[:32],
                observed_at=seen,
                identifiers=tuple(ids),
                name=name,
                name_latin=get("name_latin"),
                gender=_GENDER.get(sex),
                birthday=_birthday(bday, opts.get("date_format")) if bday else None,
                address=address,
                attributes={"postcode": postcode} if postcode else {},
            )


def _truth(path: Path | str) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not {"source_id_a", "source_id_b"} <= set(reader.fieldnames or []):
            raise ImportFormatError("truth CSV needs columns source_id_a,source_id_b")
        return [(r["source_id_a"].strip(), r["source_id_b"].strip()) for r in reader]


def evaluate_partition(
    partition: Partition,
    true_pairs: Iterable[tuple[str, str]],
    key_of: Mapping[str, str],
    seconds: float,
) -> EvaluationResult:
    clusters = ([key_of[r] for r in c] for c in partition.clusters)
    return pairwise_metrics(clusters, true_pairs, seconds=seconds)


def run_evaluation(
    records_csv: Path | str,
    truth_csv: Path | str,
    mapping: Path | str | None = None,
    config: Path | str | None = None,
    *,
    keyring: KeyRing | None = None,
) -> EvaluationResult:
    cfg = load_config(config)
    records = list(_records(records_csv, mapping))
    key_of = {f"{rec.source}:{rec.source_key}": rec.source_key for rec in records}
    if len(set(key_of.values())) != len(key_of) or len(key_of) != len(records):
        raise ImportFormatError(
            "source_id must be unique across sources (true pairs name records by it)"
        )
    truth = _truth(truth_csv)
    started = time.perf_counter()
    resolver = Resolver(keyring=keyring or KeyRing.generate(), config=cfg).fit(records)
    partition = resolver.resolve_batch(records)
    return evaluate_partition(partition, truth, key_of, time.perf_counter() - started)
