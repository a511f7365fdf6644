"""Cut the quoted history out of an e-mail reply, so a contact is what the customer just wrote.

Without it every reply carries the whole thread, and the classifier would read our own answers
(and the customer's earlier, already-handled complaint) as the new message. Conservative on
purpose: when in doubt the text is kept, and an empty result falls back to the full text.
"""

from __future__ import annotations

import re

# "On Mon, Apr 2, 2012 at 6:26 PM, Megan <m@x.com> wrote:", in the languages customers write.
_ATTRIBUTION_END = re.compile(
    r"(wrote|writes|escribió|escribio|a écrit|schrieb|ha scritto|schreef|escreveu|napisał|"
    r"написал|написала|skrev)\s*:?\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(
    r"^[\s>-]*(on|am|le|el|il|op|em|w dniu|den|\d{1,4}[./-]\d{1,2}[./-]\d{1,4})\b", re.IGNORECASE
)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(original message|mensaje original|message d'origine|"
    r"ursprüngliche nachricht|messaggio originale|mensagem original)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_FROM_LINE = re.compile(
    r"^\s*\*?(from|de|von|da|van|от|od|från|fra|lähettäjä)\*?\s*:\s*\S", re.IGNORECASE
)
_SENT_LINE = re.compile(
    r"^\s*\*?(sent|date|enviado|enviada|fecha|gesendet|datum|envoyé|data|отправлено|дата|"
    r"wysłano|skickat|sendt|verzonden|inviato|lähetetty)\*?\s*:\s*\S",
    re.IGNORECASE,
)
# "26.06.2014, 14:41, "Alexander" <a@b.c>:" and "Thu, 26 Jun 2014 14:00 от A <a@b.c>:": clients
# that put a date and the address before a colon instead of "wrote".
_DATE_LIKE = re.compile(r"\d{1,4}[./:-]\d{1,2}")
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_HEADER_BLOCK_LINES = 4
_FORWARDED = re.compile(
    r"^[\s>-]*(-{3,}|begin)\s*(forwarded message|mensaje reenviado|message transféré|"
    r"weitergeleitete nachricht|forwarded)",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(r"^\s*_{8,}\s*$")
_MAX_ATTRIBUTION_LINES = 3


_FORWARD_SUBJECT = re.compile(r"^\s*(fwd?|tr|rv|wg|enc|i|doorst|vs|fs)\s*:", re.IGNORECASE)


def is_forward(subject: str | None) -> bool:
    """Fwd:, and what Outlook calls it elsewhere (TR:, RV:, WG:, ENC:...)."""
    return bool(subject and _FORWARD_SUBJECT.match(subject))


def latest_reply(text: str, *, subject: str | None = None) -> tuple[str, bool]:
    """The customer's newest words and whether quoted history was removed."""
    if is_forward(subject):
        # A forward's quoted part is the issue itself ("see below"): keep it all.
        return text, False
    lines = text.split("\n")
    header = _quote_header(lines)
    if header is not None:
        start, end = header
        if any(_FORWARDED.match(line) for line in lines[: end + 1]):
            # A forward's quoted part is the issue itself ("see below"): keep it all.
            return text, False
        above = _trim(lines[:start])
        if above:
            return "\n".join(above), True
        # Bottom-posting: the answer follows the quote; drop the attribution and quoted lines.
        below = _trim([line for line in lines[end:] if not line.lstrip().startswith(">")])
        if below:
            return "\n".join(below), True
        return text, False
    quoted = _trailing_quote(lines)
    if quoted is not None:
        above = _trim(lines[:quoted])
        if above:
            return "\n".join(above), True
    return text, False


def _quote_header(lines: list[str]) -> tuple[int, int] | None:
    """The first line of the quoted history's header, and the line after the header."""
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if _ORIGINAL_MESSAGE.match(stripped):
            return index, index + 1
        if _header_block(lines, index):
            start = index - 1 if index > 0 and _SEPARATOR.match(lines[index - 1]) else index
            return start, index + 1
        if _dated_address(stripped):
            return index, index + 1
        if _ATTRIBUTION_START.match(stripped):
            # An attribution may wrap over a few lines before its closing "wrote:".
            joined = ""
            for offset in range(_MAX_ATTRIBUTION_LINES):
                if index + offset >= len(lines):
                    break
                joined = f"{joined} {lines[index + offset].strip()}".strip()
                if len(joined) > 400:
                    break
                if _ATTRIBUTION_END.search(joined[-40:]) and _looks_like_attribution(joined):
                    return index, index + offset + 1
    return None


def _dated_address(line: str) -> bool:
    """A date, then an address right before the closing colon ("... <a@b.c>:")."""
    if len(line) > 400 or not line.endswith(":"):
        return False
    words = line[:-1].split()
    if not words:
        return False
    address = words[-1].strip("<>\"'")
    return bool(_ADDRESS.fullmatch(address)) and bool(_DATE_LIKE.search(line))


def _header_block(lines: list[str], index: int) -> bool:
    """A quoted message's header block (From/Sent/Date...) starting at this line, any order."""
    first = lines[index]
    if not (_FROM_LINE.match(first) or _SENT_LINE.match(first)):
        return False
    block = lines[index : index + _HEADER_BLOCK_LINES]
    return any(_FROM_LINE.match(line) for line in block) and any(
        _SENT_LINE.match(line) for line in block
    )


def _looks_like_attribution(joined: str) -> bool:
    """A date or an address: "Then you wrote:" in prose is not a quote header."""
    return bool(re.search(r"\d", joined) or "@" in joined) and len(joined) <= 400


def _trailing_quote(lines: list[str]) -> int | None:
    """Where a final block of ">" lines starts, if the message ends with one."""
    start: int | None = None
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(">"):
            if start is None:
                start = index
        else:
            start = None
    return start


def _trim(lines: list[str]) -> list[str]:
    while lines and (not lines[-1].strip() or _SEPARATOR.match(lines[-1])):
        lines = lines[:-1]
    while lines and not lines[0].strip():
        lines = lines[1:]
    return lines


# Signatures: what the customer wrote stops before their sign-off block.

_SIGNATURE_DELIMITER = re.compile(r"^\s*--\s*$")  # RFC 3676's "-- ", and its trimmed form
_RULE = re.compile(r"^\s*[-_=*~]{4,}\s*$")
_DEVICE = re.compile(
    r"^\s*(sent from my|sent from (?:outlook|mail|yahoo|samsung|gmail)|sent with|sent via|"
    r"get outlook for|enviado desde mi|enviado desde (?:outlook|correo)|obtener outlook para|"
    r"envoyé de mon|envoyé depuis|gesendet von meinem|von meinem \w+ gesendet|inviato da|"
    r"enviado do meu)\b",
    re.IGNORECASE,
)
_CLOSING = re.compile(
    r"^\s*(thanks( again| a lot| in advance)?|thank you( very much| so much)?|many thanks|thx|"
    r"ty|(best|kind|warm|warmest|many)? ?regards|best( wishes)?|cheers|sincerely|"
    r"yours( truly| sincerely| faithfully)?|all the best|take care|"
    r"(un |muchos )?saludos( cordiales)?|muchas gracias|gracias( de antemano)?|atentamente|"
    r"cordialmente|un abrazo|abrazos|besos|merci( beaucoup)?|cordialement|bien à vous|"
    r"bien cordialement|(mit )?freundlichen grüßen|viele grüße|(liebe |beste )?grüße|"
    r"с уважением|спасибо|distinti saluti|cordiali saluti|grazie|obrigad[oa]|atenciosamente)"
    r"\s*[,.!]*\s*$",
    re.IGNORECASE,
)
_CONTACT_LINE = re.compile(
    r"@|https?://|www\.|\+?\d[\d ().-]{6,}\d|\b(tel|phone|fax|mobile|m|t|f)\b\.?:"
)
_POSTSCRIPT = re.compile(r"^p\.?\s?s\b", re.IGNORECASE)
_SIGNATURE_WINDOW = 10
_MAX_SIGNATURE_LINE = 60


def strip_signature(
    text: str, *, sender_name: str | None = None, sender_email: str | None = None
) -> tuple[str, bool]:
    """The text without the sender's signature block, and whether one was removed.

    Conservative like `latest_reply`: only the last few lines are considered, and a message that
    would be left empty is kept whole.
    """
    lines = _trim(text.split("\n"))
    if len(lines) < 2:
        return text, False
    cut = _signature_start(lines, _name_tokens(sender_name, sender_email))
    if cut is None:
        return text, False
    kept = _trim(lines[:cut])
    if not kept:
        return text, False
    return "\n".join(kept), True


def _signature_start(lines: list[str], names: list[str]) -> int | None:
    start = max(1, len(lines) - _SIGNATURE_WINDOW * 2)
    for index in range(start, len(lines)):
        if _SIGNATURE_DELIMITER.match(lines[index]):
            return index
    window = max(1, _nth_content_line_from_end(lines, _SIGNATURE_WINDOW + 1))
    for index in range(window, len(lines)):
        if _RULE.match(lines[index]) and _signature_like(lines[index + 1 :]):
            return index
    end = len(lines)
    while end > 1 and (not lines[end - 1].strip() or _DEVICE.match(lines[end - 1])):
        end -= 1
    device_cut = end if end < len(lines) else None
    for index in range(max(1, end - _SIGNATURE_WINDOW), end):
        line = lines[index].strip()
        if not line:
            continue
        after_break = not lines[index - 1].strip() or _CLOSING.match(line) is not None
        starts = _CLOSING.match(line) is not None or _is_name(line, names)
        if (
            starts
            and after_break
            and not _introduces(lines[:index])
            and _signature_like(lines[index + 1 : end])
        ):
            return index
    return device_cut


def _nth_content_line_from_end(lines: list[str], count: int) -> int:
    """The index of the count-th non-empty line from the end (0 when there are fewer)."""
    seen = 0
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].strip():
            seen += 1
            if seen == count:
                return index
    return 0


def _introduces(lines: list[str]) -> bool:
    """Whether the last line before a block announces it ("my new address is:")."""
    previous = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return previous.endswith(":")


def _signature_like(lines: list[str]) -> bool:
    """Short lines, or contact details: a name, a title, a company, a phone, a link."""
    content = [line.strip() for line in lines if line.strip()]
    if len(content) > _SIGNATURE_WINDOW or any(len(line) > 1000 for line in content):
        return False
    return all(
        len(line) <= _MAX_SIGNATURE_LINE or _CONTACT_LINE.search(line) is not None
        for line in content
    ) and not any(line.endswith("?") or _POSTSCRIPT.match(line) for line in content)


def _name_tokens(name: str | None, email: str | None) -> list[str]:
    tokens: list[str] = []
    if name:
        tokens.extend(token.lower() for token in re.findall(r"\w{2,}", name))
    if email and "@" in email:
        local = email.split("@", 1)[0]
        tokens.extend(token.lower() for token in re.findall(r"[a-zA-Z]{3,}", local))
    return tokens


def _is_name(line: str, names: list[str]) -> bool:
    """A short line starting with one of the sender's names: their signed name."""
    if not names or len(line) > 50:
        return False
    words = re.findall(r"\w+", line.lower())
    return bool(words) and words[0] in names


# HTML replies: clients wrap the quoted history in a known element; everything from the first
# one on is history. Cut before converting, where the structure still says what is quoted.
_HTML_QUOTE = re.compile(
    r"<(?:div|blockquote|span|hr)\b[^<>]{0,500}?(?:"
    r"class=[\"']?[^\"'<>]{0,300}?\b(?:gmail_quote|yahoo_quoted|moz-cite-prefix|OutlookMessageHeader)\b|"
    r"id=[\"']?(?:appendonsend|divRplyFwdMsg|OLK_SRC_BODY_SECTION|zwchr|stopSpelling)\b|"
    r"type=[\"']?cite\b)",
    re.IGNORECASE,
)
# Bounded, so a "<" without its ">" costs linear time, not quadratic.
_HTML_TAGS = re.compile(r"<[^<>]{0,2000}>")
_HR = re.compile(r"<hr\b[^>]*>", re.IGNORECASE)


def cut_html_quote(html: str, *, subject: str | None = None) -> str:
    """The HTML before the first quoted-history container; the whole HTML for forwards."""
    # A rule is where Outlook-style headers start; make it a line of its own for the text pass.
    html = _HR.sub("<br>________________________________<br>", html)
    if is_forward(subject):
        return html
    match = _HTML_QUOTE.search(html)
    if match is None:
        return html
    before = html[: match.start()]
    after = _HTML_TAGS.sub(" ", html[match.start() : match.start() + 2000])
    if not _HTML_TAGS.sub(" ", before).replace("&nbsp;", " ").strip():
        return html
    if _FORWARDED.search(" ".join(after.split())[:200]):
        return html
    return before
