"""Static reference data the generator draws from: places, products, stores, hotels.

Place names are public geography (province/city/district and a representative postcode), not
anyone's address; street lines are built from obviously synthetic names (示例路, 样例街 ...).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Place:
    province: str
    city: str
    district: str
    postcode: str

    @property
    def taobao_province(self) -> str:
        # Taobao writes the four municipalities without 市 in the province slot (上海 上海市 ...).
        return self.province.removesuffix("市") if self.province == self.city else self.province


PLACES: tuple[Place, ...] = (
    Place("浙江省", "杭州市", "西湖区", "310000"),
    Place("浙江省", "宁波市", "鄞州区", "315100"),
    Place("上海市", "上海市", "浦东新区", "200120"),
    Place("上海市", "上海市", "徐汇区", "200030"),
    Place("北京市", "北京市", "朝阳区", "100020"),
    Place("北京市", "北京市", "海淀区", "100080"),
    Place("广东省", "深圳市", "南山区", "518000"),
    Place("广东省", "广州市", "天河区", "510000"),
    Place("江苏省", "南京市", "鼓楼区", "210000"),
    Place("江苏省", "苏州市", "姑苏区", "215000"),
    Place("四川省", "成都市", "武侯区", "610000"),
    Place("湖北省", "武汉市", "洪山区", "430000"),
    Place("陕西省", "西安市", "雁塔区", "710000"),
    Place("重庆市", "重庆市", "渝中区", "400000"),
    Place("天津市", "天津市", "和平区", "300000"),
    Place("山东省", "青岛市", "市南区", "266000"),
    Place("福建省", "厦门市", "思明区", "361000"),
    Place("湖南省", "长沙市", "岳麓区", "410000"),
    Place("河南省", "郑州市", "金水区", "450000"),
    Place("云南省", "昆明市", "五华区", "650000"),
)

STREET_NAMES = ("示例路", "样例街", "测试大道", "演示巷", "示范路", "样板街")


@dataclass(frozen=True, slots=True)
class Product:
    sku: str  # 商家编码
    title: str
    spec: str
    price_fen: int
    barcode: str  # 69… EAN-13 style store barcode
    douyin_id: str  # 商品ID on Douyin


PRODUCTS: tuple[Product, ...] = tuple(
    Product(
        sku=f"SKU-{i + 1:03d}",
        title=title,
        spec=spec,
        price_fen=price,
        barcode=f"69000000{i + 1:05d}",
        douyin_id=f"36000000000000{i + 1:05d}",
    )
    for i, (title, spec, price) in enumerate(
        (
            ("样例精华", "30ml", 29900),
            ("样例面霜", "50ml", 19900),
            ("样例面膜", "5片", 5900),
            ("样例洁面乳", "120g", 8900),
            ("样例防晒霜", "40ml", 15900),
            ("样例口红", "3.5g", 25900),
            ("样例香水", "50ml", 59900),
            ("样例护手霜", "30g", 3900),
            ("样例眼霜", "15ml", 32900),
            ("样例小样", "5ml", 0),
            ("示例茶饮礼盒", "6罐", 12800),
            ("示例咖啡豆", "250g", 9800),
            ("示例保温杯", "500ml", 16900),
            ("示例帆布包", "标准款", 7900),
            ("示例运动袜", "3双装", 4900),
        )
    )
)
# Samples (price 0) ride along with paid items only.
PAID_PRODUCTS = tuple(p for p in PRODUCTS if p.price_fen > 0)
SAMPLE_PRODUCT = next(p for p in PRODUCTS if p.price_fen == 0)

STORE_IDS = tuple(f"S{i:03d}" for i in range(1, 13))
POS_NOS = ("01", "02", "03", "04")
POS_PAY_TYPES = ("微信", "支付宝", "银行卡", "现金")

TAOBAO_SHOP_ID = "100000001"
TAOBAO_SHOP_NAME = "样例旗舰店"
TAOBAO_MEMBER_SHOP = "SHOP001"
TAOBAO_CARRIERS = ("顺丰速运", "中通快递", "圆通速递", "韵达快递")
DOUYIN_SHOPS = ("DYSHOP01", "DYSHOP02")
DOUYIN_CHANNELS = ("抖音", "抖音", "抖音", "抖音极速版", "今日头条")
DOUYIN_TALENTS = (("100000001", "示例达人"), ("100000002", "样例主播"), ("100000003", "测试达人"))

APP_MINI = "wxapp_demo01"
APP_OFFICIAL = "wxmp_demo02"
APP_NATIVE = ("app_ios_demo", "app_android_demo")

HOTEL_IDS = ("HTL01", "HTL02", "HTL03", "HTL04", "HTL05")
ROOM_TYPES = (("DLK", 68000), ("DTK", 72000), ("STK", 98000), ("SUK", 168000))
RATE_CODES = (("BAR", "TRANS"), ("CORP1", "CORP"), ("MEMBER", "LEIS"), ("PKG", "LEIS"))
HOTEL_CHANNELS = ("WEB", "APP", "GDS", "OTA", "WALKIN")
MEMBERSHIP_LEVELS = ("BLUE", "SILVER", "GOLD", "PLATINUM")

# Surnames for receivers who are not the buyer (only the surname survives the export's mask).
OTHER_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"

# Characters a cashier plausibly types instead of the right one (a 拼音 IME picks a neighbour).
TYPO_CHARS = "伟玮炜卫维唯丽莉俐立力静婧靖晶菁敏民明铭鸣洁杰婕捷芳方放娟鹃军君峻"
