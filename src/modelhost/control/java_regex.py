"""Java regular expressions (as botocore's service models write `pattern`) in Python's `re`.

Java's syntax differs in the corners SageMaker's patterns use: POSIX and Unicode property
classes, `\\z`, and a `.` that excludes every line terminator. What cannot be translated
faithfully is reported (`python_pattern` returns None) and left unchecked.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
import warnings


@functools.cache
def _category_ranges() -> dict[str, list[tuple[int, int]]]:
    # Java's \p{L} etc. are Unicode general categories; Python's re has no \p, so we
    # build exact code-point ranges once (~0.1 s, only if such a pattern is ever used).
    ranges: dict[str, list[tuple[int, int]]] = {}
    prev, start = unicodedata.category("\0"), 0
    for cp in range(1, sys.maxunicode + 1):
        cat = unicodedata.category(chr(cp))
        if cat != prev:
            ranges.setdefault(prev, []).append((start, cp - 1))
            prev, start = cat, cp
    ranges.setdefault(prev, []).append((start, sys.maxunicode))
    return ranges


# Java's POSIX classes are US-ASCII only (without UNICODE_CHARACTER_CLASS), as class bodies.
_POSIX = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": r"\x00-\x7f",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": r"!-/:-@\[-`{-~",
    "Graph": "!-~",
    "Print": " -~",
    "Blank": r" \t",
    "Cntrl": r"\x00-\x1f\x7f",
    "XDigit": "0-9a-fA-F",
    "Space": r" \t\n\x0b\f\r",
}


@functools.cache
def _property_class(name: str) -> str:
    """Python class body for Java's \\p{name}: a POSIX class or a general category."""
    if name in _POSIX:
        return _POSIX[name]
    prefix = name.removeprefix("Is")
    found = [r for cat, rs in _category_ranges().items() if cat.startswith(prefix) for r in rs]
    if not found or len(prefix) > 2:  # scripts and blocks (\p{IsLatin}): not needed yet
        raise ValueError(f"unsupported property {name}")
    return "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in sorted(found))


_TOKEN = re.compile(
    r"\\p(?:\{(?P<prop>\w+)\}|(?P<short>\w))"  # Unicode or POSIX property
    r"|\\u(?P<hi>[dD][89abAB]\w\w)\\u(?P<lo>[dD][c-fC-F]\w\w)"  # UTF-16 surrogate pair
    r"|\\.|\[\^?|&&|.",
    re.DOTALL,
)
_ANCHORS = {"^": "^", "$": "$", r"\A": r"\A", r"\z": r"\Z", r"\Z": r"(?=[\n\r]*\Z)", r"\b": r"\b"}
_UNSUPPORTED = {r"\P", r"\Q", r"\h", r"\H", r"\v", r"\V", r"\R", r"\X", r"\G", r"\k", r"\K"}
_QUANTIFIER_START = re.compile(r"[*+?]|\{\d")
_JAVA_DOT = r"[^\n\r\x85\u2028\u2029]"  # Java's '.' excludes every line terminator


def _translate(pattern: str) -> str:
    """Rewrite the Java-only constructs of `pattern` into Python `re` syntax; ValueError
    for constructs we do not translate (none occur in the current model)."""
    out: list[str] = []
    in_class = False
    for m in _TOKEN.finditer(pattern):
        tok = m.group()
        if tok in _UNSUPPORTED or (tok == r"\x" and pattern.startswith("{", m.end())):
            raise ValueError(f"unsupported {tok}")
        if m["prop"] or m["short"]:
            body = _property_class(m["prop"] or m["short"])
            out.append(body if in_class else f"[{body}]")
        elif m["hi"]:
            # Java regexes see UTF-16: an escaped surrogate pair is one code point.
            cp = 0x10000 + ((int(m["hi"], 16) - 0xD800) << 10) + int(m["lo"], 16) - 0xDC00
            out.append(f"\\U{cp:08x}")
        elif in_class:
            if tok.startswith("[") or tok == "&&":  # Java's class union / intersection
                raise ValueError("nested character class")
            in_class = not (tok == "]" and out[-1] not in ("[", "[^"))
            out.append(tok)
        elif tok.startswith("["):
            in_class = True
            out.append(tok)
        elif tok in _ANCHORS:
            # Java lets a quantifier follow an anchor (the Tag patterns end in `${1,128}`);
            # Python says "nothing to repeat" unless the anchor sits in a group.
            quantified = _QUANTIFIER_START.match(pattern, m.end()) is not None
            out.append(f"(?:{_ANCHORS[tok]})" if quantified else _ANCHORS[tok])
        else:
            out.append(_JAVA_DOT if tok == "." else tok)
    return "".join(out)


@functools.cache
def python_pattern(java_pattern: str) -> re.Pattern[str] | None:
    """Compile a botocore (Java) pattern for whole-value matching (use `fullmatch`, as the
    service anchors patterns); None if it cannot be translated, and the check is skipped.

    Compiled with re.ASCII because Java's \\w, \\d, \\s and \\b are ASCII-only by default;
    Unicode properties (\\p{L}) become explicit ranges, which re.ASCII does not touch.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a FutureWarning means Python reads it differently
            return re.compile(_translate(java_pattern), re.ASCII)
    except Exception:  # never let a strange pattern break request handling
        return None
