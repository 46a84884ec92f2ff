"""list_page: filters, sort keys and orders, stable keyset pagination, token checks."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from modelhost.control.listing import DEFAULT_MAX_RESULTS, list_page
from modelhost.errors import ValidationException

ENDPOINT_SORT = {"Name": "EndpointName", "CreationTime": "CreationTime", "Status": "EndpointStatus"}
MODEL_SORT = {"Name": "ModelName", "CreationTime": "CreationTime"}
STATUSES = ["InService", "Creating", "Failed", "Updating"]
T0 = 1_700_000_000.0


def endpoint(i: int) -> dict[str, Any]:
    # Creation times repeat (i // 3) so ties must be broken by name; statuses repeat too.
    return {
        "EndpointName": f"ep-{i:02d}" if i % 2 else f"EP-Blue-{i:02d}",
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep-{i:02d}",
        "CreationTime": T0 + (i // 3) * 60.5,
        "LastModifiedTime": T0 + 10_000 - i,
        "EndpointStatus": STATUSES[i % len(STATUSES)],
    }


ITEMS = [endpoint(i) for i in range(23)]


def page(params: dict[str, Any], items: list[dict[str, Any]] | None = None, **kw: Any) -> Any:
    kw.setdefault("name_key", "EndpointName")
    kw.setdefault("sort_keys", ENDPOINT_SORT)
    kw.setdefault("status_key", "EndpointStatus")
    return list_page(ITEMS if items is None else items, params, **kw)


def walk(params: dict[str, Any], items: list[dict[str, Any]] | None = None, **kw: Any) -> list[str]:
    names: list[str] = []
    token: str | None = None
    for _ in range(1000):
        got, token = page({**params, **({"NextToken": token} if token else {})}, items, **kw)
        names += [item["EndpointName"] for item in got]
        if token is None:
            return names
    raise AssertionError("pagination never ended")


def names(items: list[dict[str, Any]]) -> list[str]:
    return [item["EndpointName"] for item in items]


# --- defaults and sorting -------------------------------------------------------------


def test_default_is_creation_time_descending_10_per_page() -> None:
    got, token = page({})
    assert len(got) == DEFAULT_MAX_RESULTS == 10
    assert token is not None
    times = [item["CreationTime"] for item in got]
    assert times == sorted(times, reverse=True)
    assert got[0]["CreationTime"] == max(item["CreationTime"] for item in ITEMS)


@pytest.mark.parametrize("sort_by", ["Name", "CreationTime", "Status"])
@pytest.mark.parametrize("order", ["Ascending", "Descending"])
def test_every_sort_key_and_order(sort_by: str, order: str) -> None:
    got, token = page({"SortBy": sort_by, "SortOrder": order, "MaxResults": 100})
    assert token is None and len(got) == len(ITEMS)
    field = ENDPOINT_SORT[sort_by]
    values = [item[field].lower() if sort_by == "Name" else item[field] for item in got]
    assert values == sorted(values, reverse=order == "Descending")


def test_ties_are_broken_by_name() -> None:
    got, _ = page({"SortBy": "CreationTime", "SortOrder": "Ascending", "MaxResults": 3})
    assert names(got) == sorted(names(got), key=str.lower)
    assert len({item["CreationTime"] for item in got}) == 1


def test_name_sort_is_case_insensitive() -> None:
    items = [{**endpoint(0), "EndpointName": n} for n in ["b", "A", "C", "a2", "a"]]
    got, _ = page({"SortBy": "Name", "SortOrder": "Ascending"}, items)
    assert names(got) == ["A", "a", "a2", "b", "C"]


# --- filters --------------------------------------------------------------------------


def test_name_contains_is_case_insensitive() -> None:
    got, _ = page({"NameContains": "blue", "MaxResults": 100})
    assert sorted(names(got)) == sorted(n for n in names(ITEMS) if "Blue" in n)
    assert got
    got, _ = page({"NameContains": "EP-1", "MaxResults": 100})
    assert sorted(names(got)) == sorted(n for n in names(ITEMS) if "ep-1" in n.lower())
    assert got


def test_creation_time_filters_are_strict() -> None:
    bound = T0 + 2 * 60.5  # exactly the CreationTime of items 6, 7, 8
    before, _ = page({"CreationTimeBefore": bound, "MaxResults": 100})
    after, _ = page({"CreationTimeAfter": bound, "MaxResults": 100})
    assert {i["CreationTime"] for i in before} == {T0, T0 + 60.5}
    assert all(i["CreationTime"] > bound for i in after)
    assert len(before) + len(after) == len(ITEMS) - 3
    both, _ = page({"CreationTimeAfter": T0, "CreationTimeBefore": bound, "MaxResults": 100})
    assert {i["CreationTime"] for i in both} == {T0 + 60.5}


def test_time_filters_accept_iso_and_int() -> None:
    iso = "2023-11-14T22:13:20Z"  # == T0
    got_iso, _ = page({"CreationTimeAfter": iso, "MaxResults": 100})
    got_int, _ = page({"CreationTimeAfter": int(T0), "MaxResults": 100})
    assert names(got_iso) == names(got_int)
    assert len(got_iso) == len(ITEMS) - 3


def test_last_modified_filters() -> None:
    got, _ = page({"LastModifiedTimeAfter": T0 + 10_000 - 5, "MaxResults": 100})
    assert sorted(names(got)) == sorted(names(ITEMS[:5]))
    got, _ = page({"LastModifiedTimeBefore": T0 + 10_000 - 20, "MaxResults": 100})
    assert sorted(names(got)) == sorted(names(ITEMS[21:]))


def test_items_without_the_field_never_match_its_filter() -> None:
    models = [{"ModelName": "m", "CreationTime": T0}]
    got, _ = list_page(
        models, {"LastModifiedTimeAfter": 0}, name_key="ModelName", sort_keys=MODEL_SORT
    )
    assert got == []


def test_status_equals() -> None:
    got, _ = page({"StatusEquals": "Failed", "MaxResults": 100})
    assert got and all(i["EndpointStatus"] == "Failed" for i in got)
    assert len(got) == sum(i["EndpointStatus"] == "Failed" for i in ITEMS)
    # Without a status key (ListModels) the filter does not apply.
    got, _ = page({"StatusEquals": "Failed", "MaxResults": 100}, status_key=None)
    assert len(got) == len(ITEMS)


def test_bad_timestamp_filter() -> None:
    with pytest.raises(ValidationException, match="not a valid timestamp"):
        page({"CreationTimeAfter": "soon"})


# --- pagination -----------------------------------------------------------------------


@pytest.mark.parametrize("sort_by", ["Name", "CreationTime", "Status"])
@pytest.mark.parametrize("order", ["Ascending", "Descending"])
def test_walk_covers_every_item_once_for_every_page_size(sort_by: str, order: str) -> None:
    params = {"SortBy": sort_by, "SortOrder": order}
    full, _ = page({**params, "MaxResults": 100})
    for size in range(1, len(ITEMS) + 2):
        assert walk({**params, "MaxResults": size}) == names(full), size


def test_walk_with_filters() -> None:
    params = {"NameContains": "ep-", "StatusEquals": "InService", "MaxResults": 2}
    full, _ = page({**params, "MaxResults": 100})
    assert walk(params) == names(full)


def test_last_page_has_no_token_and_empty_listing() -> None:
    assert page({"MaxResults": len(ITEMS)})[1] is None
    assert page({"MaxResults": len(ITEMS) - 1})[1] is not None
    assert page({}, items=[]) == ([], None)


def test_changes_between_pages_do_not_repeat_or_hide_items() -> None:
    items = list(ITEMS)
    params = {"SortBy": "Name", "SortOrder": "Ascending", "MaxResults": 5}
    first, token = page(params, items)
    # Delete an already-listed item and add one that sorts before the cursor.
    items.remove(first[0])
    items.append({**endpoint(99), "EndpointName": "aaa-new"})
    seen = names(first)
    while token:
        got, token = page({**params, "NextToken": token}, items)
        seen += names(got)
    assert len(seen) == len(set(seen))
    assert set(names(ITEMS)) <= set(seen)


def test_max_results_limits() -> None:
    assert len(page({"MaxResults": 1})[0]) == 1
    assert len(page({"MaxResults": 100})[0]) == len(ITEMS)
    for bad, text in [(0, "greater than or equal to 1"), (101, "less than or equal to 100")]:
        with pytest.raises(ValidationException, match=f"at 'maxResults'.*{text}"):
            page({"MaxResults": bad})
    with pytest.raises(ValidationException, match="Member must be an integer"):
        page({"MaxResults": "5"})


def test_bad_sort_parameters() -> None:
    with pytest.raises(ValidationException, match="enum value set: \\[Name, CreationTime\\]"):
        list_page(ITEMS, {"SortBy": "Status"}, name_key="EndpointName", sort_keys=MODEL_SORT)
    with pytest.raises(ValidationException, match="at 'sortOrder'"):
        page({"SortOrder": "Sideways"})


# --- tokens ---------------------------------------------------------------------------


def first_token(params: dict[str, Any]) -> str:
    token = page({**params, "MaxResults": 3})[1]
    assert token is not None
    return token


@pytest.mark.parametrize(
    "other",
    [
        {"NameContains": "blue"},
        {"SortOrder": "Ascending"},
        {"SortBy": "Name"},
        {"StatusEquals": "Failed"},
        {"CreationTimeAfter": 1},
    ],
)
def test_token_reused_with_other_parameters_is_refused(other: dict[str, Any]) -> None:
    token = first_token({})
    with pytest.raises(ValidationException, match=r"^Invalid pagination token: .*different"):
        page({**other, "NextToken": token, "MaxResults": 3})


def test_token_from_another_listing_is_refused() -> None:
    models = [{"ModelName": e["EndpointName"], "CreationTime": e["CreationTime"]} for e in ITEMS]
    token = first_token({})
    with pytest.raises(ValidationException, match=r"^Invalid pagination token"):
        list_page(models, {"NextToken": token}, name_key="ModelName", sort_keys=MODEL_SORT)


def test_same_filters_and_other_page_size_keep_working() -> None:
    token = first_token({"NameContains": "ep"})
    got, _ = page({"NameContains": "ep", "NextToken": token, "MaxResults": 50})
    assert len(got) == len(ITEMS) - 3


def decode(token: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    return body


def encode(body: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def test_tampered_position_is_refused() -> None:
    body = decode(first_token({}))
    body["p"][1] = "ep-00"
    with pytest.raises(ValidationException, match="altered"):
        page({"NextToken": encode(body), "MaxResults": 3})


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64 at all!!",
        "e30",  # {}
        encode([1, 2]),
        encode({"p": "x", "f": "y"}),
        encode({"p": [[1], 2, "n"], "f": "y"}),
        5,
    ],
)
def test_garbage_tokens_are_refused(token: object) -> None:
    with pytest.raises(ValidationException, match=r"^Invalid pagination token: "):
        page({"NextToken": token})


def test_inputs_are_not_mutated() -> None:
    items = [dict(i) for i in ITEMS]
    snapshot = [dict(i) for i in items]
    got, _ = page({"SortBy": "Name"}, items)
    assert items == snapshot
    assert got[0] is next(i for i in items if i["EndpointName"] == got[0]["EndpointName"])
