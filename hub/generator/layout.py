"""Where each generated file goes, its header, and which column is a source's person key.

Headers are copied literally from /work/shared/formats/source-formats.md (section numbers in the
comments) because the connectors are written from the same document and map columns by name.

``TRUTH_KEYS`` documents, per ``source`` value in ``truth.csv``, exactly which value is the
``source_key``: the connector for that file must key its ``SourceRecord`` the same way for the
truth to score it. Douyin order rows are deliberately absent: the export has no buyer id
(only a masked receiver), so there is no key to label; Douyin members are labelled by open_id.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.generator.timeline import EXPORT_AT

# §1a: the Taobao legacy pair carries the export minute in its file names.
_STAMP = f"{EXPORT_AT:%Y%m%d%H%M}"
TAOBAO_ORDERS = f"ExportOrderList{_STAMP}.csv"
TAOBAO_ITEMS = f"ExportOrderDetailList{_STAMP}.csv"
TAOBAO_MEMBERS = "taobao_members.csv"
DOUYIN_ORDERS = "douyin_orders.csv"
DOUYIN_MEMBERS = "douyin_members.csv"
APP_ACCOUNTS = "app_accounts.ndjson"
APP_ORDERS = "app_orders.ndjson"
POS_MEMBERS = "pos_members.csv"
POS_RECEIPTS = "pos_receipts.csv"
HOTEL_PROFILES = "hotel_profiles.ndjson"
HOTEL_STAYS = "hotel_stays.csv"
TRUTH = "truth.csv"

# Encodings as the real exporters write them: Taobao legacy is GBK; Douyin's export is UTF-8 with
# a BOM (so Excel opens it); the hub-normalised layouts are plain UTF-8.
GBK = "gbk"
UTF8_BOM = "utf-8-sig"
UTF8 = "utf-8"

# §1a, the full 37-column legacy header.
TAOBAO_ORDERS_HEADER = [
    "订单编号",
    "买家会员名",
    "买家支付宝账号",
    "买家应付货款",
    "买家应付邮费",
    "买家支付积分",
    "总金额",
    "返点积分",
    "买家实际支付金额",
    "买家实际支付积分",
    "订单状态",
    "买家留言",
    "收货人姓名",
    "收货地址",
    "运送方式",
    "联系电话",
    "联系手机",
    "订单创建时间",
    "订单付款时间",
    "宝贝标题",
    "宝贝种类",
    "物流单号",
    "物流公司",
    "订单备注",
    "宝贝总数量",
    "店铺Id",
    "店铺名称",
    "订单关闭原因",
    "卖家服务费",
    "买家服务费",
    "发票抬头",
    "是否手机订单",
    "分阶段订单信息",
    "定金排名",
    "修改后的sku",
    "修改后的收货地址",
    "异常信息",
]
# §1a items file.
TAOBAO_ITEMS_HEADER = [
    "订单编号",
    "标题",
    "价格",
    "购买数量",
    "外部系统编号",
    "商品属性",
    "套餐信息",
    "备注",
    "订单状态",
    "商家编码",
]
# §2 synthetic hub-normalised membership layout.
TAOBAO_MEMBERS_HEADER = [
    "platform",
    "shop_id",
    "ouid",
    "omid",
    "mix_nick",
    "mobile",
    "mobile_sha256",
    "bind_status",
    "grade",
    "joined_at",
]
# §3a: the columns of the document's sample (one row per sub-order).
DOUYIN_ORDERS_HEADER = [
    "主订单编号",
    "子订单编号",
    "选购商品",
    "商品规格",
    "商品数量",
    "商品ID",
    "商家编码",
    "商品单价",
    "订单应付金额",
    "运费",
    "收件人",
    "收件人手机号",
    "省",
    "市",
    "区",
    "街道",
    "详细地址",
    "订单提交时间",
    "支付完成时间",
    "订单状态",
    "售后状态",
    "达人ID",
    "达人昵称",
    "APP渠道",
]
# §4
DOUYIN_MEMBERS_HEADER = [
    "platform",
    "shop_id",
    "open_id",
    "union_id",
    "mobile",
    "mobile_encrypted",
    "is_member",
    "joined_at",
]
# §5 plus signed_up_at; these are the NDJSON object keys.
APP_ACCOUNT_FIELDS = (
    "app_id",
    "openid",
    "unionid",
    "phone",
    "phone_verified_at",
    "source",
    "signed_up_at",
)
# The document has no app order layout; this one matches connectors.member_app (amounts in fen
# like every API). One object per line: {"order_id", "app_id", "openid", "unionid",
# "created_at", "paid_at", "status", "amount_fen", "items": [{"sku", "title", "qty",
# "unit_price_fen"}], "refund_of"}. A refund is its own line: status "refunded", a negative
# amount_fen and refund_of = the original order_id (whose status stays "completed").
APP_ORDER_FIELDS = (
    "order_id",
    "app_id",
    "openid",
    "unionid",
    "created_at",
    "paid_at",
    "status",
    "amount_fen",
    "items",
    "refund_of",
)
APP_ORDER_STATUSES = ("completed", "paid", "cancelled", "refunded")
# Brief: card enrolments with English header names.
POS_MEMBERS_HEADER = ["card_no", "phone", "name", "birthday", "gender", "store_id", "enrolled_at"]
# §7 hub-normalised receipt lines; a RETURN's original_serial_num points at the SALE's serial_num.
POS_RECEIPTS_HEADER = [
    "store_id",
    "pos_no",
    "serial_num",
    "trd_time",
    "trd_type",
    "member_card_num",
    "member_mobile",
    "line",
    "item_barcode",
    "qty",
    "deal_amt_fen",
    "pay_type",
    "original_serial_num",
]
# §6a stay extract.
HOTEL_STAYS_HEADER = [
    "hotel_id",
    "confirmation_no",
    "profile_id",
    "arrival",
    "departure",
    "room_nights",
    "room_type",
    "rate_code",
    "market",
    "channel",
    "room_revenue",
    "fb_revenue",
    "other_revenue",
    "currency",
    "status",
]
TRUTH_HEADER = ["source", "source_key", "person_id"]


@dataclass(frozen=True)
class TruthKey:
    """How one ``truth.csv`` source labels a person: the file and the exact value used."""

    source: str
    file: str
    key: str


SOURCE_TAOBAO = "taobao"
SOURCE_TAOBAO_MEMBERS = "taobao_members"
SOURCE_DOUYIN_MEMBERS = "douyin_members"
SOURCE_APP = "app"
SOURCE_POS = "pos"
SOURCE_HOTEL = "hotel"

TRUTH_KEYS: dict[str, TruthKey] = {
    SOURCE_TAOBAO: TruthKey(
        SOURCE_TAOBAO,
        TAOBAO_ORDERS,
        "买家会员名 (buyer nick) as written; a renamed buyer has one row per nick",
    ),
    SOURCE_TAOBAO_MEMBERS: TruthKey(SOURCE_TAOBAO_MEMBERS, TAOBAO_MEMBERS, "ouid"),
    SOURCE_DOUYIN_MEMBERS: TruthKey(
        SOURCE_DOUYIN_MEMBERS,
        DOUYIN_MEMBERS,
        'f"{shop_id}:{open_id}" (open ids are per shop; union_id is shared)',
    ),
    SOURCE_APP: TruthKey(SOURCE_APP, APP_ACCOUNTS, 'f"{app_id}:{openid}"'),
    SOURCE_POS: TruthKey(SOURCE_POS, POS_MEMBERS, "card_no (= member_card_num on receipts)"),
    SOURCE_HOTEL: TruthKey(
        SOURCE_HOTEL,
        HOTEL_PROFILES,
        "profileIdList[0].id (= profile_id in the stays file); PMS duplicates get one row each",
    ),
}

# The ``SourceRecord.source`` each truth source's records carry, for scoring connector output
# against the truth. Two truth sources share a connector source: the Taobao membership file is
# read by connectors.taobao_members under source "taobao" (its ouids and the order file's nicks
# never collide: ouids are "AAF" + 25 upper-case hex, nicks are lower-case pinyin, tb + digits
# or Chinese). "douyin" is what the Douyin member connector is expected to use.
CONNECTOR_SOURCE: dict[str, str] = {
    SOURCE_TAOBAO: "taobao",
    SOURCE_TAOBAO_MEMBERS: "taobao",
    SOURCE_DOUYIN_MEMBERS: "douyin",
    SOURCE_APP: "app",
    SOURCE_POS: "pos",
    SOURCE_HOTEL: "hotel",
}


def app_truth_key(app_id: str, openid: str) -> str:
    return f"{app_id}:{openid}"
