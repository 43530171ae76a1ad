"""Page kind: a listing and a product page end `not_article` (embedded mode); a news article never does."""

import json
from pathlib import Path

import pytest

from schemas import CleanedArticle, RawArticle
from tests.integration.test_batches import _rows as rows_of
from tests.test_cli import _fresh_settings, _run  # noqa: F401 -- the CLI runner and its settings reset (autouse)
from workers.core.settings import Settings, get_settings
from workers.stages.clean import clean
from workers.stages.cleaning.pagekind import PageView, features, load_model

_NAV = """<header class="site-header"><a class="logo" href="/">The Riverside Gazette</a>
<nav class="main-nav"><ul><li><a href="/news/">News</a></li><li><a href="/sport/">Sport</a></li>
<li><a href="/business/">Business</a></li><li><a href="/culture/">Culture</a></li>
<li><a href="/opinion/">Opinion</a></li><li><a href="/subscribe/">Subscribe</a></li></ul></nav></header>"""
_FOOTER = """<footer class="site-footer"><ul><li><a href="/about/">About us</a></li><li><a href="/contact/">Contact</a></li>
<li><a href="/privacy/">Privacy</a></li><li><a href="/terms/">Terms</a></li></ul>
<p>© 2026 The Riverside Gazette. All rights reserved.</p></footer>"""

_HEADLINES = [
    ("council-approves-bridge-repair-budget", "Council approves bridge repair budget after long debate"),
    ("library-extends-weekend-opening-hours", "Library extends weekend opening hours from April"),
    ("new-cycle-lanes-planned-for-harbour-road", "New cycle lanes planned for Harbour Road"),
    ("school-meals-contract-goes-to-local-firm", "School meals contract goes to a local firm"),
    ("flood-defence-work-to-start-in-june", "Flood defence work to start in June"),
    ("mayor-answers-questions-on-housing-plan", "Mayor answers residents' questions on housing plan"),
    ("parking-charges-frozen-for-another-year", "Parking charges frozen for another year"),
    ("market-square-redesign-goes-on-show", "Market square redesign goes on show at town hall"),
    ("bus-route-14-to-be-restored", "Bus route 14 to be restored after petition"),
    ("council-tax-rise-capped-at-three-percent", "Council tax rise capped at three percent"),
    ("street-lights-switch-to-led", "Street lights switch to LED across the borough"),
    ("recycling-centre-opens-on-sundays", "Recycling centre opens on Sundays this summer"),
]

LISTING = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>City council – The Riverside Gazette</title>
<meta property="og:type" content="website"><meta property="og:title" content="City council">
<link rel="canonical" href="https://www.riverside-gazette.com/tag/city-council/">
<script type="application/ld+json">{{"@context": "https://schema.org", "@graph": [{{"@type": "CollectionPage",
"@id": "https://www.riverside-gazette.com/tag/city-council/", "name": "City council"}},
{{"@type": "BreadcrumbList", "itemListElement": [{{"@type": "ListItem", "position": 1, "name": "Home"}}]}}]}}</script>
</head><body>{_NAV}
<main class="tag-page"><h1 class="tag-page__title">City council</h1>
<p class="tag-page__intro">All our coverage of the city council.</p>
<div class="card-grid">
{
    "".join(
        f'''<article class="card story-card"><a class="card__image" href="/news/2026/03/{10 + i}/{slug}">
<img src="/img/{slug}.jpg" alt=""></a><div class="card__body"><span class="card__label">Local news</span>
<h3 class="card__title"><a href="/news/2026/03/{10 + i}/{slug}">{title}</a></h3>
<p class="card__teaser">{title}: what it means for residents, in brief.</p>
<time class="card__date" datetime="2026-03-{10 + i}">{10 + i} March 2026</time></div></article>
'''
        for i, (slug, title) in enumerate(_HEADLINES)
    )
}
</div>
<nav class="pagination"><a href="?page=1" class="pagination__item is-current">1</a>
<a href="?page=2" class="pagination__item">2</a><a href="?page=3" class="pagination__item">3</a>
<a href="?page=2" class="pagination__next">Next page</a></nav>
</main>{_FOOTER}</body></html>"""

PRODUCT = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Trailrunner 22 Daypack – Northridge Outdoor</title>
<meta property="og:type" content="product"><meta property="og:title" content="Trailrunner 22 Daypack">
<meta property="product:price:amount" content="89.00"><meta property="product:price:currency" content="EUR">
<script type="application/ld+json">{"@context": "https://schema.org", "@type": "Product",
"name": "Trailrunner 22 Daypack", "sku": "NR-TR22-GRN", "brand": {"@type": "Brand", "name": "Northridge"},
"aggregateRating": {"@type": "AggregateRating", "ratingValue": "4.6", "reviewCount": "128"},
"offers": {"@type": "Offer", "price": "89.00", "priceCurrency": "EUR", "availability": "https://schema.org/InStock"}}
</script></head><body>
<header class="shop-header"><a class="logo" href="/">Northridge Outdoor</a>
<nav><ul><li><a href="/collections/backpacks">Backpacks</a></li><li><a href="/collections/tents">Tents</a></li>
<li><a href="/collections/footwear">Footwear</a></li><li><a href="/cart" class="cart-link">Cart (0)</a></li></ul></nav>
</header>
<main class="product-page">
<nav class="breadcrumb"><a href="/">Home</a> / <a href="/collections/backpacks">Backpacks</a> / Trailrunner 22</nav>
<div class="product-gallery"><img src="/img/tr22-1.jpg" alt="Trailrunner 22, front">
<img src="/img/tr22-2.jpg" alt="Trailrunner 22, back"><img src="/img/tr22-3.jpg" alt="Trailrunner 22, side"></div>
<div class="product-info">
<h1 class="product-title">Trailrunner 22 Daypack</h1>
<div class="product-rating"><span class="stars" aria-label="4.6 out of 5">★★★★★</span>
<a href="#reviews" class="rating-count">128 reviews</a></div>
<p class="product-price"><span class="price price--sale">€89.00</span> <s class="price price--compare">€109.00</s></p>
<form class="product-form" action="/cart/add" method="post">
<label for="colour">Colour</label><select id="colour" name="colour" class="variant-select">
<option>Forest green</option><option>Slate grey</option><option>Ochre</option></select>
<label for="qty">Quantity</label><input id="qty" class="quantity-input" type="number" name="quantity" value="1">
<button type="submit" class="add-to-cart">Add to cart</button></form>
<p class="product-description">A light 22-litre daypack for long trail days, with a ventilated back panel,
a hip belt with two zipped pockets and room for a 2-litre hydration bladder. Made from recycled ripstop nylon
with a water-repellent finish.</p>
<ul class="product-specs"><li>Volume: 22 litres</li><li>Weight: 640 g</li><li>Back length: 46 cm</li>
<li>Material: recycled nylon 210D</li></ul>
<p class="shipping-note">Free delivery on orders over €50. Returns within 30 days.</p>
</div>
<section id="reviews" class="product-reviews"><h2>Customer reviews</h2>
<div class="review"><span class="stars">★★★★★</span><p class="review-text">Comfortable on a 30 km day.</p>
<span class="review-author">Marta, verified buyer</span></div>
<div class="review"><span class="stars">★★★★☆</span><p class="review-text">Great pockets, the green is darker than shown.</p>
<span class="review-author">Jonas, verified buyer</span></div>
</section>
<section class="related-products"><h2>You may also like</h2>
<div class="product-card"><a href="/products/trailrunner-30">Trailrunner 30</a><span class="price">€99.00</span></div>
<div class="product-card"><a href="/products/summit-hip-pack">Summit hip pack</a><span class="price">€39.00</span></div>
<div class="product-card"><a href="/products/ridge-bottle-750">Ridge bottle 750 ml</a><span class="price">€19.00</span></div>
</section></main>
<footer><p>© 2026 Northridge Outdoor</p><a href="/shipping">Shipping</a> <a href="/returns">Returns</a></footer>
</body></html>"""

_PARAGRAPHS = [
    "RIVERSIDE — The city council on Thursday approved a £4.2 million budget to repair the Old Mill bridge, "
    "ending months of debate over whether the 140-year-old crossing should be rebuilt or closed to traffic.",
    "Councillors voted 31 to 9 in favour of the plan, which will strengthen the bridge's iron girders and "
    "replace its road surface. Work is expected to begin in September and last about eight months.",
    "\u201cThis bridge carries twelve thousand journeys a day,\u201d said Councillor Priya Shah, who chairs the "
    "transport committee. \u201cClosing it would have cut the east side of the town off from its hospital.\u201d",
    "Opponents argued that the money would be better spent on a new crossing further downstream. Councillor "
    "Tom Evans said the repair only postponed a decision the council would have to take within twenty years.",
    "Engineers who inspected the bridge last autumn found corrosion in six of its twelve main girders and "
    "recommended a weight limit of 7.5 tonnes, which has been in place since November.",
    "During the works one lane will stay open for cars and buses, and a temporary footbridge will be built "
    "alongside for pedestrians and cyclists. Heavy goods vehicles will be diverted over the ring road.",
    "Local businesses on Mill Street welcomed the decision. The owner of the bakery beside the bridge said "
    "trade had fallen by a fifth since the weight limit was introduced.",
    "The council will publish the detailed timetable for the works next month, after a consultation with "
    "residents of the streets closest to the bridge.",
]

ARTICLE = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Council approves bridge repair budget after long debate – The Riverside Gazette</title>
<meta property="og:type" content="article">
<meta property="article:published_time" content="2026-03-12T18:04:00Z">
<script type="application/ld+json">{{"@context": "https://schema.org", "@type": "NewsArticle",
"headline": "Council approves bridge repair budget after long debate", "datePublished": "2026-03-12T18:04:00Z",
"author": {{"@type": "Person", "name": "Hannah Morley"}}}}</script>
</head><body>{_NAV}
<main><article class="story">
<h1 class="story__headline">Council approves bridge repair budget after long debate</h1>
<p class="story__byline">By <a href="/authors/hannah-morley">Hannah Morley</a>, local democracy reporter</p>
<time class="story__date" datetime="2026-03-12T18:04:00Z">12 March 2026</time>
<figure><img src="/img/old-mill-bridge.jpg" alt="The Old Mill bridge"><figcaption>The Old Mill bridge
carries twelve thousand journeys a day.</figcaption></figure>
<div class="story__body">{"".join(f"<p>{p}</p>" for p in _PARAGRAPHS)}</div>
</article>
<aside class="related"><h2>Related</h2><ul>
<li><a href="/news/2026/02/01/bridge-weight-limit-extended">Bridge weight limit extended</a></li>
<li><a href="/news/2026/01/15/engineers-report-on-old-mill-bridge">Engineers report on Old Mill bridge</a></li>
</ul></aside></main>{_FOOTER}</body></html>"""

URLS = {
    "listing": "https://www.riverside-gazette.com/tag/city-council/",
    "product": "https://shop.northridge-outdoor.com/products/trailrunner-22-daypack",
    "article": "https://www.riverside-gazette.com/news/2026/03/12/council-approves-bridge-repair-budget",
}
PAGES = {"listing": LISTING, "product": PRODUCT, "article": ARTICLE}


def raw_page(name: str, source: str = "gazette") -> RawArticle:
    """One of the three test pages as a raw article."""
    return RawArticle(source=source, url=URLS[name], body=PAGES[name], content_type="text/html")


def write_pages(path: Path, names: tuple[str, ...] = ("listing", "product", "article")) -> Path:
    """The test pages as one JSON-lines file (with their URLs) for `run` and `enqueue`."""
    path.write_text(
        "".join(json.dumps(json.loads(raw_page(n).model_dump_json(exclude_none=True))) + "\n" for n in names),
        encoding="utf-8",
    )
    return path


# --- the stage ----------------------------------------------------------------------------------------


def test_a_news_article_is_an_article():
    """The clean stage judges an ordinary news article `article`, with the model's confidence and version."""
    cleaned = clean(raw_page("article"), "a" * 32)
    assert cleaned.page_kind == "article"
    assert cleaned.page_kind_model == load_model().version
    assert cleaned.page_kind_confidence is not None
    assert cleaned.page_kind_confidence >= load_model().threshold
    assert "Old Mill bridge" in cleaned.text


def test_a_listing_and_a_product_page_are_not_articles():
    """A tag page of story cards and a shop's product page (JSON-LD Product, a price) are not articles."""
    listing = clean(raw_page("listing"), "b" * 32)
    product = clean(raw_page("product"), "c" * 32)
    assert listing.page_kind in ("listing", "collection")
    assert product.page_kind == "product"
    assert product.page_kind_confidence is not None
    assert product.page_kind_confidence > 0.5


def test_features_read_the_page_shape():
    """The features tell a page of repeated cards from prose: same length for every page, and different."""
    rows = {name: features(PageView(PAGES[name], URLS[name])) for name in ("listing", "article")}
    assert len(rows["listing"]) == len(rows["article"]) == len(features(PageView("", None)))
    assert rows["listing"] != rows["article"]


def test_old_cleaned_records_still_load():
    """A clean record written before page kinds existed loads as an article, not judged."""
    old = json.dumps({"article_id": "e" * 32, "version": "clean-1.3", "text": "Some text."})
    cleaned = CleanedArticle.model_validate_json(old)
    assert cleaned.page_kind == "article"
    assert cleaned.page_kind_confidence is None


def test_the_keep_setting_names_kinds_and_rejects_unknown_ones():
    """NEWSFLOW_KEEP_PAGE_KINDS keeps the kinds it names; an unknown kind is a clear error."""
    assert Settings(keep_page_kinds="forum, Documentation").kept_page_kinds == {
        "article",
        "forum",
        "documentation",
    }
    with pytest.raises(ValueError, match="unknown page kind 'forums'"):
        Settings(keep_page_kinds="forums")


# --- embedded mode ------------------------------------------------------------------------------------


def test_embedded_run_ends_listing_and_product_not_article(sqlite_url, tmp_path):
    """`newsflow run`: the listing and product pages end `not_article` (recorded, never stored, never a dead
    letter, no later stage), the article is stored; `status`, `report` and `trace` count them; a second run
    changes nothing."""
    pages = write_pages(tmp_path / "pages.jsonl")
    code, stdout, stderr = _run("run", str(pages), "--db", sqlite_url, "--json")
    assert code == 0, stderr
    stored = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert [a["url"] for a in stored] == [URLS["article"]]
    assert "2 page(s) not articles" in stderr
    kinds = dict(
        rows_of(
            sqlite_url, "SELECT r.url, n.kind FROM not_articles n JOIN raw_articles r ON r.id = n.article_id"
        )
    )
    assert set(kinds) == {URLS["listing"], URLS["product"]}
    assert kinds[URLS["product"]] == "product"
    assert rows_of(sqlite_url, "SELECT count(*) FROM dead_letters") == [(0,)]
    # No later stage ran for them: only the article has a dedup, tag and store record.
    later = rows_of(sqlite_url, "SELECT count(*) FROM stage_results WHERE stage != 'clean'")
    assert later == [(2,)]
    code, out, err = _run("status", "--db", sqlite_url, "--json")
    figures = json.loads(out)
    assert sum(figures["not_articles"].values()) == 2
    assert figures["not_articles"]["product"] == 1
    assert figures["terminal"]["not_article"] == 2
    assert figures["articles"] == 1
    code, out, err = _run("report", "--db", sqlite_url, "--json")
    assert code == 0, err
    (period,) = json.loads(out)["sources"]["gazette"]
    assert period["articles"] == 3
    assert period["not_article_rate"] == pytest.approx(2 / 3, abs=1e-3)
    product_id = rows_of(sqlite_url, f"SELECT id FROM raw_articles WHERE url = '{URLS['product']}'")[0][0]
    code, out, err = _run("trace", str(product_id), "--db", sqlite_url, "--json")
    assert code == 0, err
    traced = json.loads(out)
    assert traced["not_article"]["kind"] == "product"
    assert traced["stored"] is None
    before = rows_of(sqlite_url, "SELECT article_id, kind, confidence, model, decided_at FROM not_articles")
    code, _, stderr = _run("run", str(pages), "--db", sqlite_url, "--json")
    assert code == 0, stderr
    assert (
        rows_of(sqlite_url, "SELECT article_id, kind, confidence, model, decided_at FROM not_articles")
        == before
    )
    assert rows_of(sqlite_url, "SELECT count(*) FROM articles") == [(1,)]


def test_kept_kinds_are_stored_as_articles(sqlite_url, tmp_path, monkeypatch):
    """With NEWSFLOW_KEEP_PAGE_KINDS naming their kinds, the listing and product pages are stored as articles;
    reprocessing with the setting gone re-judges them: they end `not_article` and leave the articles table."""
    pages = write_pages(tmp_path / "pages.jsonl", ("listing", "product"))
    monkeypatch.setenv("NEWSFLOW_KEEP_PAGE_KINDS", "listing,collection,product")
    get_settings.cache_clear()
    code, stdout, stderr = _run("run", str(pages), "--db", sqlite_url, "--json")
    assert code == 0, stderr
    assert {json.loads(line)["url"] for line in stdout.splitlines() if line.startswith("{")} == {
        URLS["listing"],
        URLS["product"],
    }
    assert rows_of(sqlite_url, "SELECT count(*) FROM not_articles") == [(0,)]
    monkeypatch.delenv("NEWSFLOW_KEEP_PAGE_KINDS")
    get_settings.cache_clear()
    code, _, stderr = _run("reprocess", "--all", "--embedded", "--db", sqlite_url)
    assert code == 0, stderr
    assert rows_of(sqlite_url, "SELECT count(*) FROM not_articles") == [(2,)]
    assert rows_of(sqlite_url, "SELECT count(*) FROM articles") == [(0,)]
