"""The sample's ticker universe and trading calendar: who is listed where, under which code.

`tickers` is keyed by the ticker alone, so the per-region code schemes are chosen disjoint:

* KR: six characters starting with '0' and either ending in '0' ('005930') or containing a letter
  ('0000D0', '00088K');
* CN: six digits starting with 6 or 3, or starting with '00' and ending in 1-9 ('000858'), never a KR code;
* HK: four digits starting with 0, 1 or 2 ('0700'); JP: four digits starting with 3-9 ('7203');
* US: 1, 2, 4 or 5 letters, or a dotted class share ('BRK.B'); VN: exactly three letters ('VCB').
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

# Largest tickers_per_region every scheme can serve (HK has 2,999 codes).
MAX_TICKERS_PER_REGION = 2500


@dataclass(frozen=True)
class RegionSpec:
    """Listing conventions of one market."""

    code: str
    currency: str
    exchanges: tuple[str, ...]
    lot_sizes: tuple[int, ...]
    price_range: tuple[float, float]
    volume_range: tuple[int, int]
    data_source: str
    famous: tuple[tuple[str, str, str], ...]  # (code, local name, English name), listed first


REGIONS: tuple[RegionSpec, ...] = (
    RegionSpec("KR", "KRW", ("KRX",), (1,), (3_000, 400_000), (20_000, 20_000_000), "KIS_API",
               (("005930", "삼성전자", "Samsung Electronics"), ("000660", "SK하이닉스", "SK hynix"),
                ("0000D0", "한빛소재", "Hanbit Materials"), ("00088K", "한화3우B", "Hanwha Pref"))),
    RegionSpec("US", "USD", ("NASDAQ", "NYSE"), (1,), (8, 600), (100_000, 50_000_000), "yfinance",
               (("AAPL", "Apple Inc.", "Apple Inc."), ("MSFT", "Microsoft Corp.", "Microsoft Corp."),
                ("BRK.B", "Berkshire Hathaway Inc. Class B", "Berkshire Hathaway Inc. Class B"))),
    RegionSpec("CN", "CNY", ("SSE", "SZSE"), (100,), (4, 300), (500_000, 80_000_000), "yfinance",
               (("600519", "贵州茅台", "Kweichow Moutai"), ("000858", "五粮液", "Wuliangye Yibin"),
                ("300750", "宁德时代", "CATL"))),
    RegionSpec("HK", "HKD", ("HKEX",), (100, 200, 500, 1000), (2, 500), (50_000, 30_000_000), "yfinance",
               (("0700", "騰訊控股", "Tencent Holdings"), ("0005", "滙豐控股", "HSBC Holdings"))),
    RegionSpec("JP", "JPY", ("TSE",), (100,), (600, 30_000), (20_000, 20_000_000), "yfinance",
               (("7203", "トヨタ自動車", "Toyota Motor"), ("6758", "ソニーグループ", "Sony Group"))),
    RegionSpec("VN", "VND", ("HOSE",), (100,), (8_000, 150_000), (10_000, 10_000_000), "yfinance",
               (("VCB", "Vietcombank", "Vietcombank"), ("VNM", "Vinamilk", "Vinamilk"),
                ("FPT", "FPT Corporation", "FPT Corporation"))),
)
REGION_BY_CODE: dict[str, RegionSpec] = {spec.code: spec for spec in REGIONS}

# (sector, GICS sector code, ((industry, GICS industry code), ...))
SECTORS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("Information Technology", "45", (("Semiconductors", "453010"), ("Software", "451030"),
                                      ("Technology Hardware", "452020"))),
    ("Financials", "40", (("Banks", "401010"), ("Capital Markets", "402030"), ("Insurance", "403010"))),
    ("Health Care", "35", (("Pharmaceuticals", "352020"), ("Biotechnology", "352010"))),
    ("Industrials", "20", (("Machinery", "201060"), ("Construction & Engineering", "201030"))),
    ("Consumer Discretionary", "25", (("Automobiles", "251020"), ("Specialty Retail", "255040"))),
    ("Materials", "15", (("Chemicals", "151010"), ("Metals & Mining", "151040"))),
    ("Energy", "10", (("Oil, Gas & Consumable Fuels", "101020"),)),
    ("Communication Services", "50", (("Interactive Media & Services", "502030"),)),
    ("Consumer Staples", "30", (("Food Products", "302020"),)),
    ("Utilities", "55", (("Electric Utilities", "551010"),)),
)

# Name parts per region: (local, English) prefixes and suffixes.
_NAME_PARTS: dict[str, tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]] = {
    "KR": ((("한빛", "Hanbit"), ("대성", "Daesung"), ("삼화", "Samhwa"), ("동양", "Dongyang"),
            ("세진", "Sejin"), ("태영", "Taeyoung"), ("신성", "Shinsung"), ("금호", "Kumho")),
           (("전자", "Electronics"), ("화학", "Chemical"), ("제약", "Pharm"), ("건설", "E&C"),
            ("중공업", "Heavy Industries"), ("바이오", "Bio"), ("식품", "Foods"), ("에너지", "Energy"))),
    "US": ((("Apex", "Apex"), ("Blue Ridge", "Blue Ridge"), ("Cascade", "Cascade"), ("Summit", "Summit"),
            ("Northwind", "Northwind"), ("Pioneer", "Pioneer"), ("Redwood", "Redwood"),
            ("Keystone", "Keystone")),
           ((" Technologies Inc.", " Technologies Inc."), (" Holdings Corp.", " Holdings Corp."),
            (" Therapeutics Inc.", " Therapeutics Inc."), (" Energy Co.", " Energy Co."),
            (" Financial Group", " Financial Group"), (" Industries Inc.", " Industries Inc."))),
    "CN": ((("华泰", "Huatai"), ("中信", "Zhongxin"), ("长江", "Changjiang"), ("东方", "Dongfang"),
            ("海天", "Haitian"), ("万华", "Wanhua")),
           (("电子", " Electronics"), ("医药", " Pharmaceutical"), ("证券", " Securities"),
            ("能源", " Energy"), ("科技", " Technology"), ("化工", " Chemical"))),
    "HK": ((("新興", "Sun Hing"), ("永安", "Wing On"), ("鷹君", "Great Eagle"), ("九龍", "Kowloon"),
            ("太平洋", "Pacific")),
           (("控股", " Holdings"), ("置業", " Properties"), ("集團", " Group"), ("國際", " International"))),
    "JP": ((("東邦", "Toho"), ("大和", "Daiwa"), ("日本", "Nippon"), ("北陸", "Hokuriku"),
            ("昭和", "Showa")),
           (("工業", " Industries"), ("電機", " Electric"), ("化学", " Chemical"),
            ("製薬", " Pharmaceutical"), ("商事", " Trading"))),
    "VN": ((("Sai Gon", "Sai Gon"), ("Ha Noi", "Ha Noi"), ("Dong A", "Dong A"), ("Phu Nhuan", "Phu Nhuan"),
            ("Hoa Binh", "Hoa Binh")),
           ((" Joint Stock Company", " Joint Stock Company"), (" Corporation", " Corporation"),
            (" Group JSC", " Group JSC"))),
}
_ETF_BRANDS: dict[str, tuple[str, ...]] = {
    "KR": ("KODEX", "TIGER", "KBSTAR", "ARIRANG"), "US": ("iShares", "Vanguard", "SPDR", "Invesco"),
    "CN": ("华夏", "易方达", "南方"), "HK": ("Tracker Fund", "CSOP", "iShares"),
    "JP": ("NEXT FUNDS", "iShares", "MAXIS"), "VN": ("DCVFM", "SSIAM", "VFM"),
}
ETF_INDEXES: dict[str, tuple[str, ...]] = {
    "KR": ("KOSPI 200", "KOSDAQ 150", "KRX Semiconductor"), "US": ("S&P 500", "NASDAQ-100", "Russell 2000"),
    "CN": ("CSI 300", "SSE 50", "ChiNext"), "HK": ("Hang Seng Index", "Hang Seng TECH"),
    "JP": ("TOPIX", "Nikkei 225"), "VN": ("VN30", "VNFIN Lead"),
}


@dataclass(frozen=True)
class Ticker:
    """One listed instrument of the sample."""

    code: str
    region: str
    exchange: str
    currency: str
    asset_type: str  # STOCK or ETF
    name: str
    name_eng: str
    sector: int | None  # index into SECTORS; None for ETFs
    lot_size: int
    market_tier: str


def _kr_code(rng: random.Random) -> str:
    if rng.random() < 0.05:
        # The newer alphanumeric KRX codes: a letter somewhere in the last two places.
        body = f"{rng.randrange(1000):04d}"
        letter = rng.choice("DKLMN")
        return f"0{body}{letter}" if rng.random() < 0.5 else f"0{body[:3]}{letter}0"
    return f"0{rng.randrange(10_000):04d}0"


def _cn_code(rng: random.Random) -> str:
    prefix = rng.choice(("600", "601", "603", "000", "002", "300"))
    last = rng.randrange(1, 10) if prefix.startswith("0") else rng.randrange(10)
    return f"{prefix}{rng.randrange(100):02d}{last}"


def _hk_code(rng: random.Random) -> str:
    return f"{rng.randrange(1, 3000):04d}"


def _jp_code(rng: random.Random) -> str:
    return str(rng.randrange(3000, 10_000))


def _us_code(rng: random.Random) -> str:
    if rng.random() < 0.04:
        return "".join(rng.choices(string.ascii_uppercase, k=3)) + rng.choice((".A", ".B"))
    return "".join(rng.choices(string.ascii_uppercase, k=rng.choice((1, 2, 4, 4, 4, 5))))


def _vn_code(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_uppercase, k=3))


CODE_SCHEMES: dict[str, Callable[[random.Random], str]] = {
    "KR": _kr_code, "US": _us_code, "CN": _cn_code, "HK": _hk_code, "JP": _jp_code, "VN": _vn_code,
}


def region_of_code(code: str) -> str:
    """The region whose code scheme `code` belongs to (the schemes are disjoint by construction)."""
    if "." in code or code.isalpha():
        return "VN" if len(code) == 3 and code.isalpha() else "US"
    if len(code) == 4:
        return "HK" if code[0] in "012" else "JP"
    if code[0] == "0" and (code[-1] == "0" or not code.isdigit()):
        return "KR"
    return "CN"


def fresh_codes(rng: random.Random, region: str, count: int, taken: set[str]) -> list[str]:
    """`count` new codes of `region`'s scheme, none in `taken` (which is updated)."""
    codes: list[str] = []
    scheme = CODE_SCHEMES[region]
    while len(codes) < count:
        code = scheme(rng)
        if code not in taken:
            taken.add(code)
            codes.append(code)
    return codes


def listing_name(rng: random.Random, region: str, asset_type: str) -> tuple[str, str]:
    """A (local, English) name of a new listing of `region`."""
    if asset_type == "ETF":
        brand = rng.choice(_ETF_BRANDS[region])
        index = rng.choice(ETF_INDEXES[region])
        return f"{brand} {index}", f"{brand} {index} ETF"
    prefixes, suffixes = _NAME_PARTS[region]
    (p_local, p_eng), (s_local, s_eng) = rng.choice(prefixes), rng.choice(suffixes)
    return p_local + s_local, p_eng + s_eng


def build_universe(rng: random.Random, tickers_per_region: int) -> list[Ticker]:
    """The sample's tickers, region by region in REGIONS order, each region's codes sorted.

    About 10% of each region are ETFs (at least one once a region has two tickers); famous codes are
    always stocks so the sample keeps its recognisable names.
    """
    if not 1 <= tickers_per_region <= MAX_TICKERS_PER_REGION:
        raise ValueError(f"tickers_per_region must be within 1..{MAX_TICKERS_PER_REGION}")
    taken: set[str] = set()
    universe: list[Ticker] = []
    for spec in REGIONS:
        n_etf = max(1, round(tickers_per_region * 0.1)) if tickers_per_region >= 2 else 0
        famous = spec.famous[:tickers_per_region - n_etf]
        taken.update(code for code, _, _ in famous)
        codes = fresh_codes(rng, spec.code, tickers_per_region - len(famous), taken)
        etf_codes = set(rng.sample(codes, n_etf))
        names = {code: (local, eng) for code, local, eng in famous}
        entries = sorted([(code, "STOCK") for code, _, _ in famous]
                         + [(code, "ETF" if code in etf_codes else "STOCK") for code in codes])
        for code, asset_type in entries:
            local, eng = names.get(code) or listing_name(rng, spec.code, asset_type)
            tier = "MAIN"
            if spec.code == "KR" and asset_type == "STOCK" and rng.random() < 0.4:
                tier = "KOSDAQ"
            if spec.code == "CN":
                exchange = "SSE" if code[0] == "6" else "SZSE"  # Shanghai lists 6xxxxx, Shenzhen the rest
            else:
                exchange = rng.choice(spec.exchanges)
            universe.append(Ticker(
                code=code, region=spec.code, exchange=exchange, currency=spec.currency,
                asset_type=asset_type, name=local, name_eng=eng,
                sector=None if asset_type == "ETF" else rng.randrange(len(SECTORS)),
                lot_size=rng.choice(spec.lot_sizes), market_tier=tier,
            ))
    # `tickers` is keyed by the code alone: a code shared by two regions would break every table after it.
    if len({t.code for t in universe}) != len(universe):
        raise AssertionError("ticker codes collide across regions")
    return universe


def business_days(end: date, count: int) -> list[date]:
    """The `count` Mondays-to-Fridays ending at `end` (or at the Friday before, if `end` is a weekend)."""
    days: list[date] = []
    day = end
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    days.reverse()
    return days
