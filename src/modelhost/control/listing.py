"""Filtering, sorting and pagination for the List* control-plane operations.

Pure functions over summary dicts (timestamps as epoch floats); no I/O. The enum,
pattern and range checks on the parameters come from `validation.validate_input`
already; this module only interprets them (and re-checks the few it relies on, so a
caller that skipped validation still gets a ValidationException, never a crash).

Pagination is keyset-based, not offset-based: the NextToken carries the sort position
of the last item returned, so resources created or deleted between two pages neither
repeat nor hide the items that existed throughout the walk.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from modelhost.control.validation import parse_timestamp, violation
from modelhost.errors import ValidationException

DEFAULT_MAX_RESULTS = 10  # SageMaker's default page size
MAX_MAX_RESULTS = 100

# (parameter, item field, keep the item when item_value ? bound) — strict, as SageMaker.
_TIME_FILTERS = (
    ("CreationTimeBefore", "CreationTime", -1),
    ("CreationTimeAfter", "CreationTime", 1),
    ("LastModifiedTimeBefore", "LastModifiedTime", -1),
    ("LastModifiedTimeAfter", "LastModifiedTime", 1),
)

Position = tuple[tuple[Any, ...], str, str]


def _position(item: dict[str, Any], field: str, name_key: str) -> Position:
    # (primary, lower-cased name, name): names are unique, so this is a total order and
    # equal primaries (same CreationTime, same Status) still page deterministically.
    # A missing primary sorts first instead of raising on a None comparison; strings
    # (names, statuses) sort case-insensitively, the exact spelling breaking ties.
    value = item.get(field)
    name = str(item.get(name_key, ""))
    primary: tuple[Any, ...]
    if value is None:
        primary = (0,)
    elif isinstance(value, str):
        primary = (1, value.lower(), value)
    else:
        primary = (1, value)
    return primary, name.lower(), name


def _keep(
    item: dict[str, Any], filters: dict[str, Any], name_key: str, status_key: str | None
) -> bool:
    needle = filters.get("NameContains")
    if needle is not None and needle.lower() not in str(item.get(name_key, "")).lower():
        return False
    for param, field, sign in _TIME_FILTERS:
        bound = filters.get(param)
        if bound is None:
            continue
        value = item.get(field)
        # An item without the field (ListModels has no LastModifiedTime) never matches.
        if value is None or (value - bound) * sign <= 0:
            return False
    status = filters.get("StatusEquals")
    return status is None or status_key is None or item.get(status_key) == status


def _fingerprint(filters: dict[str, Any], position: list[Any]) -> str:
    # Binds a token to the listing it came from (filters, sort, kind) and to its own
    # position, so a token replayed with other filters or edited by hand is refused.
    # Integrity against mistakes, not secrecy: the token only names list positions the
    # caller could see anyway, and a fixed key keeps tokens valid across restarts.
    blob = json.dumps([filters, position], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(b"modelhost-list-v1:" + blob.encode()).hexdigest()[:32]


def _encode_token(filters: dict[str, Any], position: Position) -> str:
    pos = [list(position[0]), position[1], position[2]]
    body = {"p": pos, "f": _fingerprint(filters, pos)}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: object, filters: dict[str, Any]) -> Position:
    if not isinstance(token, str) or not token:
        raise ValidationException("Invalid pagination token: it must be a non-empty string.")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        pos, fingerprint = body["p"], body["f"]
        primary, lower, name = pos
        if not (isinstance(primary, list) and isinstance(lower, str) and isinstance(name, str)):
            raise ValueError("bad position")
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise ValidationException("Invalid pagination token: it is malformed.") from exc
    if fingerprint != _fingerprint(filters, pos):
        raise ValidationException(
            "Invalid pagination token: it was issued for a different request "
            "(other filters or sort) or has been altered."
        )
    return tuple(primary), lower, name


def _max_results(params: dict[str, Any]) -> int:
    value = params.get("MaxResults")
    if value is None:
        return DEFAULT_MAX_RESULTS
    if not isinstance(value, int) or isinstance(value, bool):
        raise violation(value, "maxResults", "Member must be an integer")
    if value < 1:
        raise violation(value, "maxResults", "Member must have value greater than or equal to 1")
    if value > MAX_MAX_RESULTS:
        raise violation(
            value, "maxResults", f"Member must have value less than or equal to {MAX_MAX_RESULTS}"
        )
    return value


def list_page(
    items: list[dict[str, Any]],
    params: dict[str, Any],
    *,
    name_key: str,
    sort_keys: dict[str, str],
    status_key: str | None = None,
    default_sort: str = "CreationTime",
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `items` filtered and sorted as a SageMaker List* call asks.

    `params` is the request (NameContains, Creation/LastModifiedTime Before/After,
    StatusEquals, SortBy, SortOrder, MaxResults, NextToken). `sort_keys` maps each SortBy
    value to an item field, e.g. {"Name": "EndpointName", "CreationTime": "CreationTime",
    "Status": "EndpointStatus"}; StatusEquals applies only when `status_key` is given.
    Defaults: SortBy `default_sort`, SortOrder Descending, MaxResults 10. Returns the
    page (the same dict objects, not copies) and the NextToken, None on the last page.
    """
    filters = _filters(params, name_key, sort_keys, status_key, default_sort)
    sort_by, order = filters["SortBy"], filters["SortOrder"]
    limit = _max_results(params)

    field = sort_keys[sort_by]
    descending = order == "Descending"
    chosen = [item for item in items if _keep(item, filters, name_key, status_key)]
    chosen.sort(key=lambda item: _position(item, field, name_key), reverse=descending)

    token = params.get("NextToken")
    if token is not None:
        chosen = _after_token(chosen, _decode_token(token, filters), field, name_key, descending)

    page = chosen[:limit]
    if len(chosen) <= limit:
        return page, None
    return page, _encode_token(filters, _position(page[-1], field, name_key))


def _filters(
    params: dict[str, Any],
    name_key: str,
    sort_keys: dict[str, str],
    status_key: str | None,
    default_sort: str,
) -> dict[str, Any]:
    """The validated filters and order of a List* request (also what a NextToken binds)."""
    sort_by = params.get("SortBy") or default_sort
    if sort_by not in sort_keys:
        raise violation(
            sort_by, "sortBy", f"Member must satisfy enum value set: [{', '.join(sort_keys)}]"
        )
    order = params.get("SortOrder") or "Descending"
    if order not in ("Ascending", "Descending"):
        raise violation(
            order, "sortOrder", "Member must satisfy enum value set: [Ascending, Descending]"
        )
    filters: dict[str, Any] = {"kind": name_key, "SortBy": sort_by, "SortOrder": order}
    needle = params.get("NameContains")
    if needle is not None:
        if not isinstance(needle, str):
            raise violation(needle, "nameContains", "Member must be a string")
        filters["NameContains"] = needle
    for param, _field, _sign in _TIME_FILTERS:
        if params.get(param) is not None:
            filters[param] = parse_timestamp(params[param])
    if status_key is not None and params.get("StatusEquals") is not None:
        filters["StatusEquals"] = params["StatusEquals"]
    return filters


def _after_token(
    chosen: list[dict[str, Any]], after: Any, field: str, name_key: str, descending: bool
) -> list[dict[str, Any]]:
    """The items past the position a NextToken carries."""
    try:
        if descending:
            return [i for i in chosen if _position(i, field, name_key) < after]
        return [i for i in chosen if _position(i, field, name_key) > after]
    except TypeError as exc:  # a position whose types cannot compare with ours
        raise ValidationException("Invalid pagination token: it is malformed.") from exc


def list_response(
    items: list[dict[str, Any]],
    params: dict[str, Any],
    *,
    member: str,
    name_key: str,
    sort_keys: dict[str, str],
    status_key: str | None = None,
) -> dict[str, Any]:
    """A whole List* response: `{member: <page>}`, plus `NextToken` unless it is the last."""
    page, token = list_page(
        items, params, name_key=name_key, sort_keys=sort_keys, status_key=status_key
    )
    out: dict[str, Any] = {member: page}
    if token:
        out["NextToken"] = token
    return out


def job_list_response(
    items: list[dict[str, Any]], params: dict[str, Any], job: str
) -> dict[str, Any]:
    """A List{job}Jobs response in SageMaker's common shape: `{job}JobSummaries`, filtered
    and sorted by `{job}JobName`, CreationTime and `{job}JobStatus` (transform, processing,
    compilation jobs)."""
    name_key, status_key = f"{job}JobName", f"{job}JobStatus"
    return list_response(
        items,
        params,
        member=f"{job}JobSummaries",
        name_key=name_key,
        sort_keys={"Name": name_key, "CreationTime": "CreationTime", "Status": status_key},
        status_key=status_key,
    )
