"""Short news articles in five languages, written for the tests: one feed, one article per language."""

from __future__ import annotations

import json
from pathlib import Path

ARTICLES: dict[str, tuple[str, str]] = {
    "de": (
        "Windkraft: Habeck will schnellere Genehmigungen",
        "Berlin. Der Ausbau der Windkraft an Land soll schneller vorankommen. Wirtschaftsminister Robert "
        "Habeck sagte am Dienstag in Berlin, die Genehmigungen dauerten noch immer zu lange und die Fristen "
        "für die Behörden müssten kürzer werden.\n\n"
        "Die Länder zeigten sich offen für die Pläne, doch in vielen Gemeinden regt sich Widerstand gegen "
        "neue Anlagen. Der Bundesverband Windenergie begrüßte den Vorstoß, wie die Süddeutsche Zeitung "
        "berichtete.\n\n"
        "Bis zum Jahr 2030 sollen nach dem Willen der Bundesregierung deutlich mehr Windräder gebaut werden "
        "als in den vergangenen zehn Jahren zusammen.",
    ),
    "pt": (
        "Governo anuncia novo plano para energia eólica no Nordeste",
        "Brasília. O presidente Luiz Inácio Lula da Silva anunciou nesta terça-feira um plano para ampliar "
        "a produção de energia eólica no Nordeste do país, com investimentos públicos e privados.\n\n"
        "Segundo o Ministério de Minas e Energia, os primeiros leilões devem acontecer ainda neste ano. "
        "Governadores da região elogiaram a medida, mas pescadores do litoral do Ceará pedem mais "
        "consultas antes da instalação das torres no mar.\n\n"
        "A Folha de S.Paulo informou que o governo espera criar milhares de empregos nos próximos anos.",
    ),
    "ja": (
        "東京都、新たな防災計画を発表",
        "東京都の小池百合子知事は火曜日、首都直下地震に備えた新しい防災計画を発表した。計画では、"
        "古い木造住宅が密集する地域の建て替えを進め、避難所の数を増やすとしている。\n\n"
        "都によると、計画は来年度から十年かけて実施される予定で、国や区市町村とも連携して進める。"
        "専門家は、住民一人ひとりの備えも欠かせないと指摘している。\n\n"
        "朝日新聞によると、都は今月中に住民向けの説明会を開く方針だ。",
    ),
    "fr": (
        "Emmanuel Macron reçoit Olaf Scholz à Paris",
        "Paris. Le président Emmanuel Macron a reçu mardi à l'Élysée le chancelier allemand Olaf Scholz "
        "pour parler de l'énergie et de la défense européenne. Les deux dirigeants ont ensuite rencontré "
        "Mme Ursula von der Leyen, présidente de la Commission européenne.\n\n"
        "Selon l'Agence France-Presse, la France et l'Allemagne veulent présenter un plan commun avant "
        "le prochain sommet de Bruxelles. M. Scholz a salué une discussion franche.\n\n"
        "Macron a rappelé que l'Union européenne devait rester unie face à la Russie.",
    ),
    "en": (
        "Harbour ferry strike ends after talks in Portsmouth",
        "PORTSMOUTH – The ferry strike that stranded thousands of passengers ended on Tuesday after "
        "talks between the RMT union and Wightlink in Portsmouth, the company said.\n\n"
        "Transport Secretary Louise Haigh welcomed the agreement and said services to the Isle of Wight "
        "would resume on Wednesday morning. Mick Lynch, the union's general secretary, called the deal "
        "a fair settlement for workers.\n\n"
        "Wightlink said it would refund passengers whose crossings were cancelled during the strike.",
    ),
}
"""Language → (title, text dump body). Written for these tests; no language hint is given with them."""

ENGLISH_NAMES = {("Louise Haigh", "PERSON"), ("Mick Lynch", "PERSON"), ("Portsmouth", "GPE")}
FRENCH_NAMES = {("Emmanuel Macron", "PERSON"), ("Olaf Scholz", "PERSON"), ("Ursula von der Leyen", "PERSON")}


def write_feed(path: Path, languages: tuple[str, ...] = tuple(ARTICLES)) -> Path:
    """Write the articles of `languages` as a JSON-lines feed (plain text, no language hint); returns path."""
    with path.open("w", encoding="utf-8") as fh:
        for language in languages:
            title, body = ARTICLES[language]
            record = {
                "source": f"{language}.example",
                "url": f"https://{language}.example/news/{len(body)}",
                "content_type": "text/plain",
                "title": title,
                "body": body,
            }
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
