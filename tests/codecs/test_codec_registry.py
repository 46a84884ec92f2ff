"""Media-type parsing, Accept negotiation and decoder lookup."""

from __future__ import annotations

import pytest

from modelhost.codecs import registry
from modelhost.codecs.media import choose_accept, media_type
from modelhost.errors import UnsupportedAccept, UnsupportedContentType

SUPPORTED = ("text/csv", "application/json", "application/jsonlines", "application/x-npy")


def test_media_type_strips_parameters_and_case() -> None:
    assert media_type("Text/CSV; charset=utf-8") == "text/csv"
    assert media_type("") is None
    assert media_type(None) is None


def test_canonical_resolves_aliases() -> None:
    assert registry.canonical("text/x-libsvm") == "text/libsvm"
    assert registry.canonical("application/x-jsonlines") == "application/jsonlines"


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "text/csv"),
        ("*/*", "text/csv"),
        ("application/json", "application/json"),
        ("image/png, application/json;q=0.5", "application/json"),
        ("application/*", "application/json"),
        ("APPLICATION/X-NPY", "application/x-npy"),
    ],
)
def test_choose_accept(accept: str | None, chosen: str) -> None:
    assert choose_accept(accept, SUPPORTED, "text/csv") == chosen


def test_unsupported_accept_lists_choices() -> None:
    with pytest.raises(UnsupportedAccept) as info:
        choose_accept("image/png", SUPPORTED, "text/csv")
    assert info.value.status_code == 406
    assert info.value.message == (
        "Unsupported Accept 'image/png': use one of text/csv, application/json, "
        "application/jsonlines, application/x-npy"
    )


def test_decoder_for() -> None:
    supported = ("text/csv", "text/libsvm", "text/x-libsvm", "application/json")
    media, _ = registry.decoder_for("text/x-libsvm", supported)
    assert media == "text/libsvm"
    with pytest.raises(UnsupportedContentType) as info:
        registry.decoder_for("image/png", supported)
    assert info.value.status_code == 415
    assert info.value.message == (
        "Unsupported Content-Type 'image/png': use one of text/csv, text/libsvm, application/json"
    )
