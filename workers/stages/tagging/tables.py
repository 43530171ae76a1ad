"""Static lookup tables for the tag stage: titles, abbreviations, countries and demonyms.

Everything here is built once at import time from literals and pycountry (which ships its
data inside the package, so nothing is downloaded). Lookups go through `norm_key`, so
"U.S.", "US" and "u.s." meet at the same key.
"""

from __future__ import annotations

import json
import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Final

import pycountry

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=65_536)
def norm_key(text: str) -> str:
    """Text → lookup key: casefolded, periods dropped, apostrophes and spaces unified (pure)."""
    return _SPACES.sub(" ", text.translate(_APOSTROPHES).replace(".", "")).strip().casefold()


def words(text: str) -> tuple[str, ...]:
    """Whitespace-separated words of a table literal (pure)."""
    return tuple(text.split())


LEADING_DROP: Final = frozenset({"the", "a", "an"})
"""Determiners never part of a name span (GUM, CoNLL and ACE all exclude them)."""

POSSESSIVES: Final = frozenset({"'s", "\u2019s", "'", "\u2019", "s'"})

FRENCH_LEADING_DROP: Final = frozenset({"le", "la", "les", "l'", "l\u2019", "un", "une"})
"""French determiners never part of a name span ("la France", "l'ONU")."""

FRENCH_PARTICLES: Final = frozenset({"de", "du", "des", "d'", "d\u2019"})
"""French "of" words dropped in front of a place or organisation ("de Paris", "du Sénat"); kept in
front of a person's name, where they are the particle ("de Gaulle")."""

FRENCH_TITLES: Final = frozenset(
    norm_key(word) for word in words("""M. MM. Mme Mmes Mlle Mlles Me Mgr Dr Pr""")
)
"""Courtesy titles in front of a French person's name ("M. Dupont", "Mme Borne")."""

TITLE_WORDS: Final = frozenset(
    norm_key(word)
    for word in words(
        """
    president vice prime minister secretary chancellor premier governor gov senator sen
    representative rep congressman congresswoman congressmember mayor ambassador envoy
    king queen prince princess duke duchess lord lady sir dame emperor empress sultan sheikh
    pope cardinal archbishop bishop reverend rev father pastor rabbi imam
    general gen lieutenant lt colonel col major maj captain capt commander cmdr admiral adm
    sergeant sgt corporal cpl private pvt marshal brigadier
    judge justice attorney chief chairman chairwoman chair ceo cfo coo director spokesman
    spokeswoman spokesperson officer deputy assistant foreign interior defense defence home
    state of the trade finance health education energy commerce treasury justice labor labour
    mr mrs ms miss mx dr prof professor doctor coach detective inspector superintendent
    councillor councilman councilwoman alderman leader speaker chancellor dean president-elect
    former late acting incumbent then top senior supreme
    """
    )
)
"""Words that make up a title in front of a person name ("Secretary of State", "Dr.", "President")."""

ABBREVIATIONS: Final[dict[str, str]] = {
    norm_key(short): full
    for short, full in [
        ("U.N.", "United Nations"),
        ("UN", "United Nations"),
        ("E.U.", "European Union"),
        ("EU", "European Union"),
        ("NATO", "NATO"),
        ("N.A.T.O.", "NATO"),
        ("WHO", "World Health Organization"),
        ("IMF", "International Monetary Fund"),
        ("WTO", "World Trade Organization"),
        ("FBI", "FBI"),
        ("CIA", "CIA"),
        ("AP", "Associated Press"),
        ("UNSC", "United Nations Security Council"),
        ("Security Council", "United Nations Security Council"),
        ("U.N. Security Council", "United Nations Security Council"),
        ("UN Security Council", "United Nations Security Council"),
        ("Pentagon", "Pentagon"),
        ("GOP", "Republican Party"),
        ("Fed", "Federal Reserve"),
    ]
}
"""Common organisation abbreviations → the canonical name used within an article."""

# Country names as news writes them, beyond pycountry's name/official_name/common_name.
_COUNTRY_ALIASES: Final = {
    "US": ["U.S.", "US", "U.S.A.", "USA", "America", "United States of America", "the United States"],
    "GB": ["U.K.", "UK", "Britain", "Great Britain"],
    "RU": ["Russia"],
    "KP": ["North Korea", "DPRK", "D.P.R.K."],
    "KR": ["South Korea", "ROK"],
    "CN": ["China", "PRC", "People's Republic of China", "Mainland China"],
    "TW": ["Taiwan"],
    "CZ": ["Czech Republic"],
    "CD": ["DR Congo", "DRC", "Democratic Republic of Congo", "Democratic Republic of the Congo"],
    "CG": ["Republic of Congo", "Congo-Brazzaville"],
    "PS": ["Palestine", "Palestinian Territories"],
    "TR": ["Turkey"],
    "CI": ["Ivory Coast"],
    "BN": ["Brunei"],
    "VA": ["Vatican", "Vatican City", "Holy See"],
    "MM": ["Burma", "Myanmar"],
    "NL": ["Holland", "The Netherlands"],
    "AE": ["UAE", "U.A.E.", "Emirates"],
    "MK": ["Macedonia"],
    "SZ": ["Swaziland"],
    "CV": ["Cape Verde"],
    "TL": ["East Timor"],
}

_PREFERRED_NAME: Final = {
    "US": "United States",
    "GB": "United Kingdom",
    "RU": "Russia",
    "KP": "North Korea",
    "KR": "South Korea",
    "CD": "Democratic Republic of the Congo",
    "CG": "Republic of the Congo",
    "PS": "Palestine",
    "TR": "Turkey",
    "CI": "Ivory Coast",
    "BN": "Brunei",
    "VA": "Vatican City",
    "FM": "Micronesia",
    "MD": "Moldova",
}

DEMONYMS: Final[dict[str, str]] = {
    norm_key(word): code
    for code, words in {
        "US": "American, Americans",
        "CN": "Chinese",
        "GB": "British, Briton, Britons",
        "FR": "French",
        "DE": "German, Germans",
        "RU": "Russian, Russians",
        "JP": "Japanese",
        "KP": "North Korean, North Koreans",
        "KR": "South Korean, South Koreans",
        "IN": "Indian, Indians",
        "PK": "Pakistani, Pakistanis",
        "AF": "Afghan, Afghans, Afghani",
        "IR": "Iranian, Iranians",
        "IQ": "Iraqi, Iraqis",
        "SY": "Syrian, Syrians",
        "IL": "Israeli, Israelis",
        "PS": "Palestinian, Palestinians",
        "SA": "Saudi, Saudis",
        "EG": "Egyptian, Egyptians",
        "TR": "Turkish, Turks",
        "UA": "Ukrainian, Ukrainians",
        "PL": "Polish, Poles",
        "IT": "Italian, Italians",
        "ES": "Spanish, Spaniards",
        "PT": "Portuguese",
        "NL": "Dutch",
        "BE": "Belgian, Belgians",
        "SE": "Swedish, Swedes",
        "NO": "Norwegian, Norwegians",
        "DK": "Danish, Danes",
        "FI": "Finnish, Finns",
        "IE": "Irish",
        "GR": "Greek, Greeks",
        "CA": "Canadian, Canadians",
        "MX": "Mexican, Mexicans",
        "BR": "Brazilian, Brazilians",
        "AR": "Argentine, Argentinian, Argentinians",
        "CL": "Chilean, Chileans",
        "CO": "Colombian, Colombians",
        "VE": "Venezuelan, Venezuelans",
        "CU": "Cuban, Cubans",
        "AU": "Australian, Australians",
        "NZ": "New Zealander, New Zealanders",
        "ZA": "South African, South Africans",
        "NG": "Nigerian, Nigerians",
        "KE": "Kenyan, Kenyans",
        "ET": "Ethiopian, Ethiopians",
        "VN": "Vietnamese",
        "TH": "Thai",
        "PH": "Filipino, Filipinos, Philippine",
        "ID": "Indonesian, Indonesians",
        "MY": "Malaysian, Malaysians",
        "TW": "Taiwanese",
        "BD": "Bangladeshi, Bangladeshis",
        "LK": "Sri Lankan, Sri Lankans",
        "NP": "Nepalese, Nepali",
        "MM": "Burmese",
        "LB": "Lebanese",
        "JO": "Jordanian, Jordanians",
        "YE": "Yemeni, Yemenis",
        "LY": "Libyan, Libyans",
        "SD": "Sudanese",
        "SO": "Somali, Somalis",
        "CH": "Swiss",
        "AT": "Austrian, Austrians",
        "HU": "Hungarian, Hungarians",
        "CZ": "Czech, Czechs",
        "RO": "Romanian, Romanians",
        "RS": "Serbian, Serbs",
        "HR": "Croatian, Croats",
        "BY": "Belarusian, Belarusians",
        "GE": "Georgian, Georgians",
        "AM": "Armenian, Armenians",
        "AZ": "Azerbaijani, Azerbaijanis",
        "KZ": "Kazakh, Kazakhs",
        "QA": "Qatari, Qataris",
        "AE": "Emirati, Emiratis",
        "KW": "Kuwaiti, Kuwaitis",
        "MA": "Moroccan, Moroccans",
        "DZ": "Algerian, Algerians",
        "TN": "Tunisian, Tunisians",
        "PE": "Peruvian, Peruvians",
    }.items()
    for word in words.split(", ")
}
"""Demonym (adjective or people) → ISO 3166-1 alpha-2 of its country."""


@cache
def _countries() -> dict[str, str]:
    table: dict[str, str] = {}
    for country in pycountry.countries:
        code = str(country.alpha_2)
        for attr in ("name", "official_name", "common_name"):
            value = getattr(country, attr, None)
            if isinstance(value, str):
                table.setdefault(norm_key(value), code)
    for code, aliases in _COUNTRY_ALIASES.items():
        for alias in aliases:
            table[norm_key(alias)] = code
    # Keys like "Congo" and "Georgia" stay; "the United States" is matched after "the" is stripped.
    return table


@cache
def _subdivisions() -> frozenset[str]:
    return frozenset(norm_key(str(sub.name)) for sub in pycountry.subdivisions)


def country_code(text: str) -> str | None:
    """Name as written ("U.S.", "China", "North Korea") → ISO alpha-2, or None (pure)."""
    return _countries().get(norm_key(text))


def country_name(code: str) -> str:
    """ISO alpha-2 → the short English name news uses ("KP" → "North Korea") (pure)."""
    if code in _PREFERRED_NAME:
        return _PREFERRED_NAME[code]
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return code
    common = getattr(country, "common_name", None)
    return str(common) if isinstance(common, str) else str(country.name)


def demonym_code(text: str) -> str | None:
    """Demonym ("Chinese", "North Koreans") → ISO alpha-2 of its country, or None (pure)."""
    return DEMONYMS.get(norm_key(text))


def is_subdivision(text: str) -> bool:
    """Whether the text names a first-level subdivision in pycountry ("Florida", "Bavaria") (pure)."""
    return norm_key(text) in _subdivisions()


PLACES_FILE: Final = Path(__file__).with_name("places.json")
"""Names of towns and cities (GeoNames cities15000, CC BY 4.0), rebuilt by bench/build_places.py."""


@cache
def _places() -> frozenset[str]:
    names = json.loads(PLACES_FILE.read_text(encoding="utf-8"))["names"]
    return frozenset(norm_key(str(name)) for name in names)


def is_place_name(text: str) -> bool:
    """Whether the text names a country, a first-level subdivision or a town of 15,000 people or more
    ("Sapporo", "Hokkaido", "Corpus Christi") (pure; the gazetteer is loaded on first use)."""
    key = norm_key(text)
    return key in _countries() or key in _subdivisions() or key in _places()


def expand_abbreviation(text: str) -> str | None:
    """Organisation abbreviation ("U.N.") → canonical name ("United Nations"), or None (pure)."""
    return ABBREVIATIONS.get(norm_key(text))
