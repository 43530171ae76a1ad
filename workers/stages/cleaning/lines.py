"""Line features: is a line prose, or page chrome (nav, share bars, ads, footers)? And its learning key."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import xxhash

from schemas.cleaned import RemovalReason

_WORD = re.compile(r"\w+", re.UNICODE)
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_SENTENCE_END = re.compile(r"""[.!?…:;。！？]["'”’»)\]」』]*$""")
# Han and kana: written without spaces, so words are estimated as two characters each.
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_ONLY_DATE = re.compile(
    r"^(?:(?:posted|published|updated|on)\s*:?\s*)?(?:\w+day,?\s+)?(?:\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2},?\s+\d{4}|"
    r"\d{1,2}\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?\s+\d{4})"
    r"(?:\s*(?:at|,|-|–|\|)?\s*\d{1,2}:\d{2}(?:\s*[ap]\.?m\.?)?(?:\s*[A-Z]{2,4})?)?$",
    re.I,
)
_RELATIVE_TIME = re.compile(
    r"^(?:about |posted |updated )?(?:\d+|an?|one) (?:seconds?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?)"
    r" ago\b.{0,30}$|^(?:rating|score|votes?|points?|likes?)\s*:?\s*[\d,]+(?:\s+(?:votes?|points?|likes?))?$|"
    r"^[\d,]+\s+(?:votes?|points?|likes?|replies|repl(?:y|ies))$",
    re.I,
)
_SECTION_BREAK = re.compile(
    r"^(?:\d+\s+)?(?:(?:top|most|best|newest|oldest|reader|user|latest)\s+)?(?:rated\s+)?comments?\b|"
    r"^(?:related|recommended|more from|more in|more|most (?:viewed|read|popular)|you (?:may|might) also|"
    r"(?:read|see) (?:also|more|next|these next|this next)|further reading|keep reading|what to read next|"
    r"editor'?s picks|don'?t miss|popular (?:now|stories|posts)|trending)\b",
    re.I,
)
_COMMENT_HEAD = re.compile(r"^.{1,60}\s(?:says|said|wrote|commented)\s?:$", re.I)
_CONSENT = re.compile(
    r"\b(?:this (?:web)?site uses cookies|we use cookies|cookies? (?:policy|settings|consent|preferences)|"
    r"by (?:continuing|using) (?:to (?:use|browse) )?(?:this|our) (?:web)?site|accept (?:all )?cookies|"
    r"necessary cookies|third-party cookies|opt-out of these cookies|gdpr)\b",
    re.I,
)
_COUNTS_ONLY = re.compile(r"^[\d\s.,:/|+·•kKmM%-]+$")

# Whole-line chrome: the line is nothing but this cue (optionally with a count or a colon).
_SHARE = (
    "share",
    "share this",
    "share this article",
    "share on facebook",
    "share on twitter",
    "tweet",
    "facebook",
    "twitter",
    "x",
    "linkedin",
    "whatsapp",
    "telegram",
    "reddit",
    "pinterest",
    "email",
    "print",
    "copy link",
    "copy",
    "comments",
    "comment",
    "reply",
    "like",
    "save",
    "pin it",
    "share via",
    "share article",
    "follow us",
    "connect with us",
    "follow",
    "flipboard",
    "messenger",
    "sms",
    "shares",
    "views",
    "instagram",
    "youtube",
    "tiktok",
    "rss",
)
_AD = (
    "advertisement",
    "advertise",
    "advertise here",
    "advertise with us",
    "sponsored",
    "ad",
    "sponsored content",
    "partner content",
    "story continues below advertisement",
    "article continues below",
    "scroll to continue with content",
)
_RELATED_HEADINGS = (
    "related",
    "related articles",
    "related stories",
    "related posts",
    "recent news",
    "recent posts",
)
_COMMENT_CONTROLS = (
    "report abuse",
    "flag",
    "likes",
    "log in to reply",
    "login to reply",
    "reply to this comment",
    "cancel reply",
    "post comment",
)
_NAV = (
    "home",
    "menu",
    "search",
    "skip to content",
    "skip to main content",
    "close",
    "open",
    "login",
    "log in",
    "sign in",
    "sign up",
    "register",
    "subscribe",
    "subscribe now",
    "next",
    "previous",
    "back to top",
    "more",
    "read more",
    "continue reading",
    "load more",
    "show more",
    "see more",
    "view more",
    "more stories",
    *_RELATED_HEADINGS,
    "latest news",
    "latest",
    "trending",
    "trending now",
    "most popular",
    "most read",
    "popular",
    "top stories",
    "you may also like",
    "you might also like",
    "recommended",
    "recommended for you",
    "more from",
    "also read",
    "see also",
    "read next",
    "up next",
    "news",
    "world news",
    "sports",
    "business",
    "opinion",
    "tags",
    "topics",
    "categories",
    *_AD,
    "contact us",
    "about us",
    "privacy policy",
    "terms of use",
    "terms of service",
    "cookie policy",
    "sitemap",
    "careers",
    "find a job",
    "newsletter",
    "newsletters",
    "download the app",
    "get the app",
    "go to",
    "watch",
    "listen",
    "video",
    "photos",
    "gallery",
    "loading",
    "click here",
    "jobs",
    "report",
    *_COMMENT_CONTROLS,
    "submit",
    "loading...",
    "accept",
    "accept all",
    "reject all",
    "ok",
)
_SHARE_BAR: RemovalReason = "share_bar"
_NAV_REASON: RemovalReason = "nav"
_WHOLE: dict[str, RemovalReason] = dict.fromkeys(_SHARE, _SHARE_BAR) | dict.fromkeys(_NAV, _NAV_REASON)
_WHOLE |= dict.fromkeys(_AD, "ad")
for _c in (
    *_RELATED_HEADINGS,
    "you may also like",
    "you might also like",
    "recommended",
    "recommended for you",
    "more stories",
    "also read",
    "see also",
    "read next",
    "up next",
    "most popular",
    "most read",
    "trending",
    "trending now",
    "top stories",
):
    _WHOLE[_c] = "related"
_WHOLE |= dict.fromkeys(("comments", "comment", "reply", *_COMMENT_CONTROLS), "comments")

_SOCIAL = re.compile(
    r"\b(?:facebook|twitter|whatsapp|pinterest|pint|pin|linkedin|email|e mail|reddit|telegram|tumblr|flipboard|"
    r"messenger|print|sms|copy link|instagram|youtube|tiktok|share|tweet|vk|weibo|wechat|line|x)\b"
)
_JOBS = re.compile(r"\b(jobs?|careers?)\b", re.I)
# Cues anywhere in a short line.
_CUES: tuple[tuple[re.Pattern[str], RemovalReason], ...] = (
    (re.compile(r"^avatar( photo)? of\b|^(photo|image) of\b.{0,40}$|^author (avatar|photo)", re.I), "byline"),
    (
        re.compile(
            r"\b(share|tweet|pin|email) (this|on|via|the|your thoughts)\b|\bfollow us( on)?\b|\bconnect with us\b",
            re.I,
        ),
        "share_bar",
    ),
    (
        re.compile(
            r"\b(sign up|subscribe|register)\b.{0,60}\b(newsletter|updates|inbox|free|today|now|alerts)\b"
            r"|\bnewsletter\b|\bget (the|our) (latest|best|daily)\b|\b(delivered|straight) to your inbox\b",
            re.I,
        ),
        "nav",
    ),
    (re.compile(r"©|\(c\) \d{4}|\bcopyright\b|\ball rights reserved\b", re.I), "footer"),
    (re.compile(r"\b(advertis(e|ement|ing)|sponsored|promoted|paid (post|content))\b", re.I), "ad"),
    (
        re.compile(
            r"\b(continue reading|read more|read the full|click here|tap here|load more|"
            r"see (all|more)|view (all|more)|more on this)\b",
            re.I,
        ),
        "nav",
    ),
    (re.compile(r"\b(download|get) (the|our) .{0,20}\bapp\b|\b(app store|google play)\b", re.I), "nav"),
    (_JOBS, "nav"),
    (
        re.compile(
            r"\b(privacy|cookie) (policy|settings|notice)\b|\bterms (of|and) (use|service|conditions)\b", re.I
        ),
        "footer",
    ),
    (
        re.compile(
            r"\b(\d+ )?(comments?|replies)\b|\bleave a (comment|reply)\b|\bjoin the (conversation|discussion)\b",
            re.I,
        ),
        "comments",
    ),
    (re.compile(r"\b(\d+ )?min(ute)?s? read\b|\breading time\b", re.I), "byline"),
    (
        re.compile(
            r"\b(related|recommended|trending|popular|most read|latest|recent) (news|stories|articles|posts|videos)\b",
            re.I,
        ),
        "related",
    ),
)

# Footers that describe the outlet's editorial team or the author: prose, but not the article.
_FOOTER_PROSE = re.compile(
    r"\b(editorial (team|staff|board)|our (team|newsroom|journalists)|about the author|"
    r"(team|newsroom) (comprises|consists of|is made up of)|is (a|an|the) (senior |staff |freelance |"
    r"contributing |award-winning |veteran )?(writer|reporter|journalist|correspondent|editor|columnist|"
    r"contributor)\b.{0,40}\b(for|at|with|who|based)\b|dedicated to (delivering|providing|bringing)|"
    r"keeping (them|readers|you) informed|has been (writing|reporting|covering)|"
    r"(views|opinions) expressed (in this|here|are)|this (article|story|content) (was|is) "
    r"(produced|provided|written|generated|published)|follow (him|her|them) on)\b",
    re.I,
)
# Promotion of the outlet's newsletters, feeds and forums, and contact lines: prose, not the article.
# Only short lines: an article paragraph may well mention newsletters or unsubscribing.
_PROMO = re.compile(
    r"\bunsubscribe (?:at any time|anytime)\b|\bno spam[.,!]|\bsubscribe to (?:our|the)\b.{0,60}\b(?:newsletters?|"
    r"magazine|title|edition|feed|channel|mailing list)\b|\bfollow us on\b|\bjoin our (?:newsletters?|forums?|"
    r"community|mailing list)\b|^e-?mail \w+(?: \w+)? at \S+@",
    re.I,
)
PROMO_MAX_WORDS = 30
"""Longest line that a newsletter/follow-us cue marks as promotion."""
_PROMO_HINTS = ("subscribe", "spam", "follow us", "join our", "@")
_CREDITS = re.compile(
    r"(\bcontributed (to )?(this|the) (story|report|article)\b|\bcontributed reporting\b|"
    r"^\(?(additional )?reporting by\b|\bediting by\b|^\(?compiled by\b|^\(?writing by\b|"
    r"\b(associated press|ap|reuters|afp|upi|dpa|bloomberg) (writers?|reporters?|correspondents?|"
    r"staff)\b.{0,200}\bcontributed\b)",
    re.I,
)
_LONGEST_RULE_WORDS = 14  # no whole-line cue has more words, counts and separators included
_CONSENT_HINTS = ("cookie", "gdpr", "by continuing", "by using")
_FOOTER_HINTS = (
    "editor",
    "our ",
    "about the author",
    "comprises",
    "consists of",
    "made up of",
    "writer",
    "reporter",
    "journalist",
    "correspondent",
    "columnist",
    "contributor",
    "dedicated to",
    "informed",
    "has been",
    "expressed",
    "produced",
    "provided",
    "written",
    "generated",
    "published",
    "follow",
)
_SENTENCE_LIKE_MIN_WORDS = 7
CANDIDATE_MAX_WORDS = 40
"""Longest line (in words) that can be learned as source chrome, unless a boilerplate cue marks it."""


@dataclass(frozen=True, slots=True)
class LineInfo:
    """Features of one line of text, computed once."""

    text: str
    words: int
    sentence_end: bool
    alpha_ratio: float
    chrome: RemovalReason | None
    footer_prose: bool
    credits: bool

    @property
    def prose(self) -> bool:
        """True for a line that reads like article prose (a sentence or more, not chrome)."""
        return (
            self.chrome is None
            and not self.footer_prose
            and not (self.words < 40 and self.text.endswith(("...", "…")))  # a cut-off teaser
            and self.alpha_ratio >= 0.6
            and (
                (self.words >= 12 and (self.sentence_end or self.words >= 25))
                or (self.words >= _SENTENCE_LIKE_MIN_WORDS and self.sentence_end)
            )
        )


def fold(text: str) -> str:
    """Return the comparison form of a line: case-folded, accents and punctuation dropped, spaces collapsed."""
    folded = text.casefold()
    if not folded.isascii():
        folded = _COMBINING.sub("", unicodedata.normalize("NFKD", folded))
    return " ".join(_WORD.findall(folded))


def line_key(text: str) -> str:
    """Return the learning key of a line: 16 hex digits of xxh64 over its folded text."""
    return xxhash.xxh64_hexdigest(fold(text).encode("utf-8"))


def chrome_reason(text: str, words: int) -> RemovalReason | None:  # noqa: PLR0911, PLR0912  # an ordered list of rules, each returning its reason
    """Return why a line is page chrome by its own features, or None if it may be content."""
    if words > _LONGEST_RULE_WORDS:
        # Every rule below but the counter one applies to short lines only; skipping them keeps
        # long paragraphs (most of an article) cheap.
        if not _WORD.search(text) and not fold(text):
            return "markup"
        return "share_bar" if _COUNTS_ONLY.match(text) else None
    folded = fold(text)
    if not folded:
        return "empty" if not text.strip() else "markup"
    stripped = re.sub(r"[\s:|»›>•·-]+$", "", text.strip().casefold()).strip()
    if stripped in _WHOLE:
        return _WHOLE[stripped]
    base = re.sub(r"\s*\(?\d[\d.,kKmM]*\)?$", "", stripped)
    if base in _WHOLE:
        return _WHOLE[base]
    if words <= 8 and len(_SOCIAL.findall(folded)) >= 2:
        return "share_bar"  # "Whatsapp Facebook Pinterest", "Share: Twitter Email"
    if _COUNTS_ONLY.match(text):
        return "share_bar"  # share/view counters such as "800 1"
    if words <= 12 and _ONLY_DATE.match(text):
        return "byline"  # a bare timestamp line (article or comment header)
    if words <= 12 and (_COMMENT_HEAD.match(text) or _RELATIVE_TIME.match(text)):
        return "comments"
    if words <= 5 and _SECTION_BREAK.match(text) and not _SENTENCE_END.search(text):
        return "comments" if "comment" in text.casefold() else "related"
    if words <= 14:
        sentence = bool(_SENTENCE_END.search(text))
        for pattern, reason in _CUES:
            if pattern.search(text):
                # A real sentence that merely mentions jobs or comments is not chrome.
                if pattern is _JOBS and (words > 5 or sentence):
                    continue
                if reason == "comments" and words >= 6 and sentence:
                    continue
                return reason
    return None


def ends_sentence(text: str) -> bool:
    """True when a line ends like a sentence (full stop, question or exclamation mark, closing quote)."""
    return bool(_SENTENCE_END.search(text))


def is_date_line(text: str) -> bool:
    """True for a line that is only a date (and time), such as an article's or a card's timestamp."""
    return bool(_ONLY_DATE.match(text.strip()))


@lru_cache(maxsize=8192)
def is_comment_structure(text: str) -> bool:
    """True for the lines that make up a comment thread: "X said:", "2 hours ago", "Reply", a timestamp."""
    stripped = text.strip()
    return bool(
        _COMMENT_HEAD.match(stripped)
        or _RELATIVE_TIME.match(stripped)
        or _ONLY_DATE.match(stripped)
        or stripped.casefold() in ("reply", "report", "like", "log in to reply", "report abuse")
    )


def is_footer_prose(text: str) -> bool:
    """True for an outlet/author blurb, a newsletter/follow-us promotion or a cookie-consent notice."""
    # Literal hints every match must contain: a substring test is far cheaper than the regexes.
    low = text.lower()
    return bool(
        (any(hint in low for hint in _FOOTER_HINTS) and _FOOTER_PROSE.search(text))
        or (any(hint in low for hint in _CONSENT_HINTS) and _CONSENT.search(text))
        or (
            any(hint in low for hint in _PROMO_HINTS)
            and len(text.split()) <= PROMO_MAX_WORDS
            and _PROMO.search(text)
        )
    )


def count_words(text: str) -> int:
    """Return the number of words of a line; Han and kana count one word per two characters."""
    words = len(text.split())
    if not text.isascii():
        words += len(_CJK.findall(text)) // 2
    return words


def is_credits(text: str, words: int) -> bool:
    """True for a wire/agency credit line ("Reporting by ...", "AP writers ... contributed")."""
    return words <= 80 and bool(_CREDITS.search(text))


def analyse(text: str) -> LineInfo:
    """Return the features of one normalised line."""
    words = count_words(text)
    letters = sum(map(str.isalpha, text))
    visible = (len(text) - text.count(" ")) or 1
    return LineInfo(
        text=text,
        words=words,
        sentence_end=bool(_SENTENCE_END.search(text)),
        alpha_ratio=letters / visible,
        chrome=chrome_reason(text, words),
        footer_prose=is_footer_prose(text),
        credits=is_credits(text, words),
    )


def is_candidate(info: LineInfo) -> bool:
    """True if a line may be learned as source chrome: short or boilerplate-like, never a prose sentence.

    A sentence of article prose (seven words or more, ending like a sentence, without chrome cues)
    is never a candidate, even when a source repeats it: repeated prose is syndicated or background
    text, and removing it would cut articles.
    """
    if not fold(info.text):
        return False
    if info.chrome is not None or info.footer_prose:
        return True
    if info.words > CANDIDATE_MAX_WORDS:
        return False
    return not (info.words >= _SENTENCE_LIKE_MIN_WORDS and info.sentence_end)
