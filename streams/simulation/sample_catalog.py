"""A sample item catalog of a Shenzhen-like city, for the demo, the bench and the tests.

Names follow real Shenzhen licensing items; limits, fees and flags are plausible, not official.
"""

from __future__ import annotations

from permitwatch.models.catalog import Catalog

DEPARTMENTS = {
    "SZ-SAMR": "市场监督管理局",
    "SZ-HOUSING": "住房和建设局",
    "SZ-PLAN": "规划和自然资源局",
    "SZ-TRANSPORT": "交通运输局",
    "SZ-ECO": "生态环境局",
    "SZ-HEALTH": "卫生健康委员会",
    "SZ-CULTURE": "文化广电旅游体育局",
    "SZ-WATER": "水务局",
    "SZ-URBAN": "城市管理和综合执法局",
    "SZ-EDU": "教育局",
}

_MATERIALS = {
    "ID": "申请人身份证明",
    "BL": "营业执照",
    "APP": "申请书",
    "SITE": "经营场所证明",
    "PLAN": "平面布局图",
    "STAFF": "从业人员资格证明",
    "SAFE": "安全管理制度",
    "EQP": "设备设施清单",
    "EIA": "环境影响报告书",
    "DRAW": "设计图纸",
    "LAND": "土地权属证明",
    "CONTRACT": "施工合同",
    "FUND": "资金证明",
    "VEH": "车辆技术资料",
}


def _item(code: str, name: str, department: str, materials: list[str], **flags) -> dict:
    return {
        "item_code": code,
        "name": name,
        "department": department,
        "materials": [{"code": f"{code}-{m}", "name": _MATERIALS[m]} for m in materials],
        "licence_required": flags.pop("licence_required", True),
        **flags,
    }


def _wd(value: int) -> dict:
    return {"value": value, "unit": "working_days"}


SAMPLE_ITEMS = [
    _item("SZ-SAMR-001", "食品经营许可", "SZ-SAMR", ["ID", "BL", "APP", "SITE", "PLAN"], promised_limit=_wd(10)),
    _item("SZ-SAMR-002", "药品零售企业许可", "SZ-SAMR", ["ID", "BL", "APP", "SITE", "STAFF"], promised_limit=_wd(12)),
    _item("SZ-SAMR-003", "特种设备使用登记", "SZ-SAMR", ["BL", "APP", "EQP"], on_the_spot=True),
    _item("SZ-SAMR-004", "工业产品生产许可", "SZ-SAMR", ["BL", "APP", "EQP", "SAFE"], promised_limit=_wd(15),
          fee={"fee_code": "FEE-SAMR-004", "max_amount": "1500.00"}),
    _item("SZ-SAMR-005", "第二类医疗器械经营备案", "SZ-SAMR", ["BL", "APP", "SITE"], on_the_spot=True,
          licence_required=False),
    _item("SZ-HOUSING-001", "建筑工程施工许可", "SZ-HOUSING", ["BL", "APP", "CONTRACT", "DRAW", "FUND"],
          statutory_limit=_wd(15), promised_limit=_wd(5)),
    _item("SZ-HOUSING-002", "商品房预售许可", "SZ-HOUSING", ["BL", "APP", "LAND", "DRAW", "FUND"], promised_limit=_wd(10)),
    _item("SZ-HOUSING-003", "房地产开发企业资质核定", "SZ-HOUSING", ["BL", "APP", "STAFF", "FUND"], promised_limit=_wd(15)),
    _item("SZ-PLAN-001", "建设工程规划许可", "SZ-PLAN", ["BL", "APP", "LAND", "DRAW"], joint_handling=True,
          promised_limit=_wd(20)),
    _item("SZ-PLAN-002", "建设用地规划许可", "SZ-PLAN", ["BL", "APP", "LAND"], preliminary_review=True,
          statutory_limit=_wd(45)),
    _item("SZ-PLAN-003", "临时用地审批", "SZ-PLAN", ["ID", "APP", "LAND", "PLAN"], hearing_required=True,
          statutory_limit=_wd(40)),
    _item("SZ-TRANSPORT-001", "出租汽车经营权配置", "SZ-TRANSPORT", ["ID", "BL", "APP", "VEH"], quantity_limited=True,
          allocation="order", promised_limit=_wd(10)),
    _item("SZ-TRANSPORT-002", "道路货物运输经营许可", "SZ-TRANSPORT", ["ID", "BL", "APP", "VEH", "STAFF"],
          promised_limit=_wd(10)),
    _item("SZ-TRANSPORT-003", "网络预约出租汽车运输证", "SZ-TRANSPORT", ["ID", "VEH"], on_the_spot=True),
    _item("SZ-TRANSPORT-004", "小客车增量指标(单位)", "SZ-TRANSPORT", ["BL", "APP"], quantity_limited=True,
          allocation="auction", licence_required=False),
    _item("SZ-ECO-001", "建设项目环境影响报告书审批", "SZ-ECO", ["BL", "APP", "EIA"], hearing_required=True,
          statutory_limit={"value": 60, "unit": "calendar_days"}),
    _item("SZ-ECO-002", "排污许可", "SZ-ECO", ["BL", "APP", "EQP"], promised_limit=_wd(15)),
    _item("SZ-ECO-003", "危险废物经营许可", "SZ-ECO", ["BL", "APP", "EQP", "SAFE", "STAFF"], promised_limit=_wd(15),
          fee={"fee_code": "FEE-ECO-003", "max_amount": "800.00"}),
    _item("SZ-HEALTH-001", "医疗机构执业许可", "SZ-HEALTH", ["BL", "APP", "SITE", "STAFF", "EQP"],
          promised_limit=_wd(15), fee={"fee_code": "FEE-HEALTH-001", "max_amount": "200.00"}),
    _item("SZ-HEALTH-002", "公共场所卫生许可", "SZ-HEALTH", ["BL", "APP", "SITE"], on_the_spot=True),
    _item("SZ-HEALTH-003", "放射诊疗许可", "SZ-HEALTH", ["BL", "APP", "EQP", "STAFF"], promised_limit=_wd(12)),
    _item("SZ-CULTURE-001", "娱乐场所经营许可", "SZ-CULTURE", ["ID", "BL", "APP", "SITE", "SAFE"], promised_limit=_wd(10)),
    _item("SZ-CULTURE-002", "营业性演出审批", "SZ-CULTURE", ["BL", "APP", "PLAN"], promised_limit=_wd(3)),
    _item("SZ-WATER-001", "取水许可", "SZ-WATER", ["BL", "APP", "EQP"], preliminary_review=True,
          statutory_limit=_wd(45)),
    _item("SZ-WATER-002", "城镇污水排入排水管网许可", "SZ-WATER", ["BL", "APP", "DRAW"], promised_limit=_wd(10),
          fee={"fee_code": "FEE-WATER-002", "max_amount": "300.00"}),
    _item("SZ-URBAN-001", "户外广告设施设置许可", "SZ-URBAN", ["BL", "APP", "DRAW"], quantity_limited=True,
          allocation="order", promised_limit=_wd(10)),
    _item("SZ-URBAN-002", "城市道路挖掘许可", "SZ-URBAN", ["BL", "APP", "DRAW", "CONTRACT"], promised_limit=_wd(5)),
    _item("SZ-EDU-001", "民办学校办学许可", "SZ-EDU", ["BL", "APP", "SITE", "STAFF", "FUND"], hearing_required=True,
          statutory_limit=_wd(40)),
]

SAMPLE_CATALOG = Catalog.model_validate({"version": "sample-shenzhen-1", "items": SAMPLE_ITEMS})
