"""Which connector reads which file: the registry behind `hub import` and `POST /ingest`.

``detect(head, name)`` looks at a file's first bytes (and its name only to pair Taobao's legacy
order and item files) and says which connector reads it, or raises ``ImportFormatError``
listing what each connector expects. ``parse_files`` opens and parses a list of paths with one
connector (or each with its detected one), streaming.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors import (
    douyin,
    douyin_members,
    generic_csv,
    hotel,
    member_app,
    pos,
    taobao,
    taobao_members,
)
from connectors.base import SNIFF_BYTES, sniff_encoding
from hub.core.errors import ImportFormatError
from hub.core.records import Item

_XLSX_MAGIC = b"PK\x03\x04"
_TAOBAO_ORDERS = re.compile(r"ExportOrderList(?P<stamp>[^/\\]*)\.csv$", re.IGNORECASE)
_TAOBAO_ITEMS = re.compile(r"ExportOrderDetailList(?P<stamp>[^/\\]*)\.csv$", re.IGNORECASE)


def _csv_header(head: bytes) -> list[str]:
    text = head.decode(sniff_encoding(head), errors="ignore").lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    try:
        return [h.replace("\t", "").strip() for h in next(csv.reader(io.StringIO(first)))]
    except (StopIteration, csv.Error):
        return []


def _is_json(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[")


def _douyin_head(head: bytes) -> bool:
    if _is_json(head):
        return any(k in head for k in (b"sku_order_list", b"doudian_open_id", b'"order_status"'))
    return douyin.looks_like(_csv_header(head))


@dataclass(frozen=True)
class Connector:
    name: str
    description: str
    detect: Callable[[bytes], bool]
    parse: Callable[..., Iterator[Item]]
    business_line: str


# Most specific first: member files before order files, marketplaces before the generic readers.
CONNECTORS: dict[str, Connector] = {
    c.name: c
    for c in (
        Connector(
            "taobao_members",
            "Taobao/Tmall 会员通 membership CSV (ouid, omid, mix_nick, mobile…)",
            lambda h: not _is_json(h) and taobao_members.looks_like(_csv_header(h)),
            taobao_members.parse,
            taobao_members.BUSINESS_LINE,
        ),
        Connector(
            "douyin_members",
            "Douyin 会员通 CSV (open_id, union_id, mobile…)",
            lambda h: not _is_json(h) and douyin_members.looks_like(_csv_header(h)),
            douyin_members.parse,
            douyin_members.BUSINESS_LINE,
        ),
        Connector(
            "taobao",
            "Taobao/Tmall order export: legacy GBK ExportOrderList CSV (+ items) or 千牛 XLSX",
            lambda h: (
                h.startswith(_XLSX_MAGIC) or (not _is_json(h) and taobao.looks_like(_csv_header(h)))
            ),
            taobao.parse,
            taobao.BUSINESS_LINE,
        ),
        Connector(
            "douyin",
            "抖店 order export CSV or open-API order JSON",
            _douyin_head,
            douyin.parse,
            douyin.BUSINESS_LINE,
        ),
        Connector(
            "pos",
            "store POS receipts (CSV/JSON) or member-card enrolments",
            pos.looks_like,
            pos.parse,
            pos.BUSINESS_LINE,
        ),
        Connector(
            "member_app",
            "app / mini-program accounts and orders (NDJSON)",
            member_app.looks_like,
            member_app.parse,
            member_app.BUSINESS_LINE,
        ),
        Connector(
            "hotel",
            "OPERA profile JSON, OTA_ProfileReadRS XML, stays CSV",
            hotel.looks_like,
            hotel.parse,
            hotel.BUSINESS_LINE,
        ),
    )
}
GENERIC = "generic_csv"
NAMES = (*CONNECTORS, GENERIC)


def read_head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(SNIFF_BYTES)


def detect(head: bytes, filename: str) -> str:
    """The connector for a file, or ImportFormatError naming what each one expects."""
    if _TAOBAO_ITEMS.search(filename) and taobao.looks_like_items(_csv_header(head)):
        return "taobao"
    for connector in CONNECTORS.values():
        if connector.detect(head):
            return connector.name
    expected = "; ".join(f"{c.name}: {c.description}" for c in CONNECTORS.values())
    raise ImportFormatError(
        f"{filename}: no connector recognises this file (for a partner CSV use "
        f"`generic_csv` with --mapping). Expected one of — {expected}"
    )


def check(name: str, head: bytes, filename: str) -> None:
    """Fail fast when a file is given to the wrong connector."""
    connector = CONNECTORS.get(name)
    if connector is None:
        return
    if name == "taobao" and _TAOBAO_ITEMS.search(filename):
        return
    if not connector.detect(head):
        try:
            found = detect(head, filename)
        except ImportFormatError:
            found = None
        hint = f" It looks like a {found} file." if found else ""
        raise ImportFormatError(f"{filename} is not a {name} file ({connector.description}).{hint}")


def _pair_taobao(paths: Sequence[Path]) -> tuple[list[tuple[Path, Path | None]], set[Path]]:
    items = {m.group("stamp"): p for p in paths if (m := _TAOBAO_ITEMS.search(p.name))}
    pairs: list[tuple[Path, Path | None]] = []
    used: set[Path] = set()
    for p in paths:
        if _TAOBAO_ITEMS.search(p.name):
            continue
        m = _TAOBAO_ORDERS.search(p.name)
        partner = items.get(m.group("stamp")) if m else None
        if partner is not None:
            used.add(partner)
        pairs.append((p, partner))
    return pairs, used


# Connectors with an import fast lane (``parse(..., fast=True)`` may yield ``Purchase`` items).
FAST_LANE = frozenset({"taobao"})


def parse_path(
    name: str,
    path: Path,
    *,
    mapping: Any = None,
    items: Path | None = None,
    fast: bool = False,
    **options: Any,
) -> Iterator[Item]:
    """Parse one file (or a Taobao order file with its items file), streaming. ``fast``: take
    the connector's fast lane if it has one (only ``hub.flows.ingest`` reads its items)."""
    if fast and name in FAST_LANE:
        options["fast"] = True
    with path.open("rb") as fh:
        if name == GENERIC:
            if mapping is None:
                raise ImportFormatError("generic_csv needs --mapping FILE.toml")
            yield from generic_csv.parse(fh, filename=path.name, mapping=mapping, **options)
        elif name == "taobao" and items is not None:
            with items.open("rb") as ih:
                yield from taobao.parse_pair(
                    fh, ih, orders_filename=path.name, items_filename=items.name, **options
                )
        else:
            yield from CONNECTORS[name].parse(fh, filename=path.name, **options)


def expand(paths: Sequence[Path]) -> list[Path]:
    """Files as given, folders as their files (sorted; hidden files and anything under a hidden
    folder skipped: ``.hub`` holds the hub's own keys and database, ``.git`` a repository)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(
                sorted(
                    f
                    for f in p.rglob("*")
                    if f.is_file()
                    and not any(part.startswith(".") for part in f.relative_to(p).parts)
                )
            )
        elif p.exists():
            out.append(p)
        else:
            raise ImportFormatError(f"{p}: no such file or folder")
    return out


@dataclass(frozen=True)
class Plan:
    """One unit of an import: a connector, a file, and for Taobao its items file."""

    connector: str
    path: Path
    items: Path | None = None


def plan(
    name: str, paths: Sequence[Path], *, mapping: Any = None
) -> tuple[list[Plan], list[tuple[Path, str]]]:
    """Which connector reads which file (``name`` is a connector or ``auto``), and the files
    refused up front with the reason. A refused file never stops the others."""
    if name not in ("auto", *NAMES):
        raise ImportFormatError(
            f"unknown connector {name!r}; choose auto or one of {', '.join(NAMES)}"
        )
    files = expand(paths)
    plans: list[Plan] = []
    refused: list[tuple[Path, str]] = []
    chosen: dict[Path, str] = {}
    for f in files:
        try:
            head = read_head(f)
            if name == "auto":
                chosen[f] = _auto(head, f, mapping)
            else:
                check(name, head, f.name)
                chosen[f] = name
        except ImportFormatError as exc:
            refused.append((f, exc.message))
        except OSError as exc:
            refused.append((f, f"{f.name}: cannot read ({exc.strerror or exc.__class__.__name__})"))
    files = [f for f in files if f in chosen]
    taobao_files = [f for f, c in chosen.items() if c == "taobao"]
    pairs, used_items = _pair_taobao(taobao_files)
    paired = dict(pairs)
    for f in files:
        connector = chosen[f]
        if f in used_items:
            continue
        if connector == "taobao":
            if _TAOBAO_ITEMS.search(f.name):
                continue  # an items file without its order file earns nothing alone
            plans.append(Plan(connector, f, paired.get(f)))
        else:
            plans.append(Plan(connector, f))
    return plans, refused


def _auto(head: bytes, path: Path, mapping: Any) -> str:
    if mapping is not None and generic_csv.looks_like(head, mapping=mapping):
        return GENERIC
    return detect(head, path.name)
