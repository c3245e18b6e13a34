"""Safe Markdown for the rating page: both responses (and the prompt) go through this one
function, so the two sides are always rendered alike.

markdown-it-py renders CommonMark plus tables and strikethrough with raw HTML off (any `<tag>`
in a model's output is shown as text). Links, images and autolinks are off too: a rater page
must not load or point to anything an output names (a tracking image, a URL that hints at a
model), so they stay visible as text. The HTML markdown-it produces then passes an allow-list
written here (tags, and the few attributes markdown-it emits), as a second line of defence that
does not depend on the renderer's own escaping. Headings are shifted down two levels so an
output's `#` never outranks the page's own headings.
"""

from __future__ import annotations

import re
from functools import lru_cache
from html import escape
from html.parser import HTMLParser

from markdown_it import MarkdownIt

_MARKDOWN = (
    MarkdownIt("commonmark", {"html": False, "breaks": True})
    .enable(["table", "strikethrough"])
    .disable(["link", "image", "autolink"])
)

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr", "em", "strong", "s", "del", "code", "pre", "blockquote",
        "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td",
        "h3", "h4", "h5", "h6",
    }
)  # fmt: skip
VOID_TAGS = frozenset({"br", "hr"})
HEADING_SHIFT = {f"h{n}": f"h{min(n + 2, 6)}" for n in range(1, 7)}
# Attribute name -> the values allowed, per tag; anything else is dropped.
ALLOWED_ATTRIBUTES: dict[str, dict[str, re.Pattern[str]]] = {
    "code": {"class": re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}")},
    "th": {"style": re.compile(r"text-align:(left|right|center)")},
    "td": {"style": re.compile(r"text-align:(left|right|center)")},
    "ol": {"start": re.compile(r"[0-9]{1,9}")},
}


class _AllowList(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = HEADING_SHIFT.get(tag, tag)
        if tag not in ALLOWED_TAGS:
            return
        allowed = ALLOWED_ATTRIBUTES.get(tag, {})
        kept = "".join(
            f' {name}="{escape(value)}"'
            for name, value in attrs
            if name in allowed and value is not None and allowed[name].fullmatch(value)
        )
        self.out.append(f"<{tag}{kept}>")
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        tag = HEADING_SHIFT.get(tag, tag)
        if tag in ALLOWED_TAGS and tag not in VOID_TAGS and tag in self.open:
            while self.open:
                closing = self.open.pop()
                self.out.append(f"</{closing}>")
                if closing == tag:
                    break

    def handle_data(self, data: str) -> None:
        self.out.append(escape(data, quote=False))

    def result(self) -> str:
        self.close()
        return "".join(self.out) + "".join(f"</{tag}>" for tag in reversed(self.open))


# A pair goes to k raters, and rendering an 11,000-character output costs ~4 ms: keep recent
# results (bounded: at most a few MB).
@lru_cache(maxsize=256)
def markdown_html(text: str) -> str:
    """`text` as safe HTML: Markdown rendered, raw HTML shown as text, allow-listed tags only."""
    sanitizer = _AllowList()
    sanitizer.feed(_MARKDOWN.render(text))
    # The renderer ends blocks with a newline; trimmed, so no slot's markup has edges of its own.
    return sanitizer.result().strip()
