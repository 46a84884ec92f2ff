"""CloudWatch Logs filter patterns for unstructured events: terms and quoted phrases.

`ERROR Exception` matches events containing both terms; `"Model loaded"` matches the
phrase; `?ERROR ?WARN` matches events with either; `ERROR -timeout` excludes events with
`timeout`. Matching is case-sensitive, as in CloudWatch. JSON (`{ $.x = 1 }`) and
space-delimited (`[ip, user, ...]`) patterns are refused as not supported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class FilterPatternError(ValueError):
    """The pattern is malformed or uses a syntax modelhost does not support."""


@dataclass(frozen=True)
class FilterPattern:
    """A parsed pattern: every `required` term, none of `excluded`, one of `any_of` (if
    given) must occur in an event's message."""

    required: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    any_of: tuple[str, ...] = field(default=())

    def matches(self, message: str) -> bool:
        if any(term not in message for term in self.required):
            return False
        if any(term in message for term in self.excluded):
            return False
        return not self.any_of or any(term in message for term in self.any_of)

    def is_empty(self) -> bool:
        return not (self.required or self.excluded or self.any_of)


def parse_filter_pattern(text: str | None) -> FilterPattern:
    """Parse `text`; an empty or missing pattern matches every event."""
    text = (text or "").strip()
    if text.startswith(("{", "[")):
        raise FilterPatternError(
            "JSON and space-delimited filter patterns are not supported by modelhost; use "
            'terms and quoted phrases (ERROR "model loaded" ?WARN -timeout).'
        )
    required: list[str] = []
    excluded: list[str] = []
    any_of: list[str] = []
    for kind, term in _tokens(text):
        {"": required, "-": excluded, "?": any_of}[kind].append(term)
    return FilterPattern(tuple(required), tuple(excluded), tuple(any_of))


def _tokens(text: str) -> list[tuple[str, str]]:
    """(operator, term) pairs: operator is '', '-' or '?'."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        op = ""
        if text[i] in "-?" and i + 1 < len(text) and not text[i + 1].isspace():
            op, i = text[i], i + 1
        if text[i] == '"':
            end = _closing_quote(text, i)
            term = text[i + 1 : end].replace('\\"', '"')
            i = end + 1
        else:
            end = i
            while end < len(text) and not text[end].isspace():
                end += 1
            term, i = text[i:end], end
        if term:
            out.append((op, term))
    return out


def _closing_quote(text: str, start: int) -> int:
    j = start + 1
    while j < len(text):
        if text[j] == "\\" and j + 1 < len(text):
            j += 2
            continue
        if text[j] == '"':
            return j
        j += 1
    raise FilterPatternError(f"Unterminated quoted phrase in filter pattern: {text[start:]}")
