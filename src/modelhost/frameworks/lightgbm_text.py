"""LightGBM's text model format checked before LightGBM parses it.

Why: LightGBM parses trees in an OpenMP loop and trusts what it reads: a truncated or
edited file aborts (or segfaults) the whole instance process instead of raising, which
would leave only a crash in the log instead of a FailureReason. `check_model_text`
raises `ModelLoadError` for everything that parser trusts (the lightgbm runtime calls
it before `lightgbm.Booster(model_str=...)`).
"""

from __future__ import annotations

import re

import numpy as np
from numpy.typing import NDArray

from modelhost.errors import ModelLoadError

_TREE_HEADER = re.compile(rb"^Tree=\d+\r?$", re.M)
_INT = rb"-?[0-9]+"
_NUM = rb"(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?(?i:inf|nan))"
_INTS = re.compile(rb" *(?:" + _INT + rb"(?: +" + _INT + rb")*)? *\r?")
_NUMS = re.compile(rb" *(?:" + _NUM + rb"(?: +" + _NUM + rb")*)? *\r?")
_KEY = re.compile(rb"[a-z_]+")
_RESAVE = "re-save it with booster.save_model('model.txt')"
_PARAM_LINE = re.compile(rb"\[[A-Za-z0-9_]+: [^\n]*\]\r?")
# The tree format as LightGBM's Tree(const char*) reads it: which keys hold integers,
# which it requires, and how many values each array must hold for num_leaves = n. It
# reads them into fixed-size buffers inside an OpenMP loop, where a missing key or a
# wrong count aborts the process.
_INT_KEYS = frozenset(
    b"num_leaves num_cat split_feature decision_type left_child right_child leaf_count "
    b"internal_count is_linear cat_boundaries cat_threshold num_features leaf_features".split()
)
_REQUIRED_SPLIT = (b"left_child", b"right_child", b"split_feature", b"threshold")
_PER_SPLIT = (
    *_REQUIRED_SPLIT,
    *(b"split_gain", b"decision_type", b"internal_value", b"internal_weight", b"internal_count"),
)
_PER_LEAF = (b"leaf_weight", b"leaf_count")


def check_model_text(data: bytes, name: str) -> None:
    """Raise `ModelLoadError` for model text LightGBM's parser would crash on.

    LightGBM parses trees in an OpenMP loop and trusts what it reads: a truncated or
    edited file aborts (or segfaults) the whole process instead of raising, and a bad
    child link makes predict loop forever. This checks what it trusts: the end markers
    whose absence means the file was cut short, the header's counts and `tree_sizes`
    offsets, every tree line (numbers, array lengths, indices, tree shape) and the
    parameters section. Linear in the file size, mostly C-speed regexes and numpy.
    """
    if not data.startswith((b"tree\n", b"tree\r\n")):
        raise ModelLoadError(
            f"{name} is not a LightGBM text model: it does not start with LightGBM's 'tree' "
            f"header; {_RESAVE}"
        )
    end = data.find(b"\nend of trees")
    params = data.find(b"\nparameters:", max(end, 0))
    if end < 0 or (params >= 0 and data.find(b"\nend of parameters", params) < 0):
        marker = "end of trees" if end < 0 else "end of parameters"
        raise ModelLoadError(
            f"{name} is truncated: LightGBM's '{marker}' line is missing; upload the "
            "complete file written by booster.save_model('model.txt')"
        )
    starts = [m.start() for m in _TREE_HEADER.finditer(data, 0, end + 1)]
    problem = _header_problem(data[: starts[0] if starts else end], starts)
    if problem:
        raise ModelLoadError(f"{name} is corrupt: {problem}; {_RESAVE}")
    n_features = int(_header_value(data[: starts[0] if starts else end], b"max_feature_idx")) + 1
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else end + 1
        problem = _tree_problem(data[start:stop], n_features)
        if problem:
            raise ModelLoadError(f"{name} is corrupt: tree {i} {problem}; {_RESAVE}")
    if params >= 0:
        for line in data[params + 12 : data.find(b"\nend of parameters", params)].splitlines():
            if line.strip() and not _PARAM_LINE.fullmatch(line):
                shown = line[:60].decode("utf-8", "replace")
                raise ModelLoadError(f"{name} is corrupt: bad parameter line {shown!r}; {_RESAVE}")


def _header_value(header: bytes, key: bytes) -> bytes:
    found = re.search(rb"^" + key + rb"=(.*?)\r?$", header, re.M)
    return found.group(1) if found else b"0"


def _header_problem(header: bytes, starts: list[int]) -> str | None:
    """What is wrong with the lines before the first tree, or None."""
    counts = [_header_value(header, k) for k in (b"num_class", b"num_tree_per_iteration")]
    counts.append(_header_value(header, b"max_feature_idx"))
    if not all(c.isdigit() for c in counts):
        return "num_class, num_tree_per_iteration or max_feature_idx is not a number"
    if int(counts[1]) > int(counts[0]):
        # Predict would write one output per tree of an iteration into num_class slots.
        return "num_tree_per_iteration is larger than num_class"
    sizes = re.search(rb"^tree_sizes=(.*?)\r?$", header, re.M)
    if sizes is None:
        return None
    tokens = sizes.group(1).split()
    if len(tokens) != len(starts):
        return f"the header lists {len(tokens)} trees, the file holds {len(starts)}"
    offset = starts[0] if starts else 0
    for i, size in enumerate(tokens):
        if offset != starts[i] or not size.isdigit():
            return f"tree {i} is not where the header's tree_sizes puts it (edited or cut)"
        offset += int(size)
    return None


def _tree_problem(block: bytes, n_features: int) -> str | None:
    """What is wrong with one `Tree=` block, or None."""
    fields: dict[bytes, list[bytes]] = {}
    lines = block.splitlines()[1:]
    if b"" not in lines:
        return "does not end with a blank line"  # LightGBM would read on into the next
    for line in lines[: lines.index(b"")]:
        key, sep, value = line.partition(b"=")
        values = _INTS if key in _INT_KEYS else _NUMS
        if not sep or not _KEY.fullmatch(key) or not values.fullmatch(value):
            return f"has a malformed line {line[:60].decode('utf-8', 'replace')!r}"
        fields[key] = value.split()
    for key in (b"num_leaves", b"num_cat", b"leaf_value"):
        if key not in fields:
            return f"lacks {key.decode()}"
    n, cats = (int((fields[k] or [b"-1"])[0]) for k in (b"num_leaves", b"num_cat"))
    if n < 1 or cats < 0:
        return f"has num_leaves={n} and num_cat={cats}"
    wanted = {b"leaf_value": n}
    if n > 1 or fields.get(b"is_linear", [b"0"]) != [b"0"]:
        missing = [k.decode() for k in _REQUIRED_SPLIT if k not in fields]
        if missing:
            return f"lacks {', '.join(missing)}"
        wanted.update({**dict.fromkeys(_PER_SPLIT, n - 1), **dict.fromkeys(_PER_LEAF, n)})
        wanted.update({b"leaf_const": n, b"num_features": n})
        per_leaf = fields.get(b"num_features", [])
        linear_total = sum(int(v) for v in per_leaf) if len(per_leaf) == n else 0
        wanted.update({b"leaf_features": linear_total, b"leaf_coeff": linear_total})
        if cats > 0:
            bounds = fields.get(b"cat_boundaries") or [b"-1"]
            if b"cat_threshold" not in fields or int(bounds[-1]) < 0:
                return "lacks cat_boundaries or cat_threshold"
            wanted.update({b"cat_boundaries": cats + 1, b"cat_threshold": int(bounds[-1])})
    for key, count in wanted.items():
        got = len(fields[key]) if key in fields else count
        if got != count:
            return f"has {got} {key.decode()} values, {count} expected (num_leaves={n})"
    return _index_problem(fields, n, cats, n_features)


def _index_problem(
    fields: dict[bytes, list[bytes]], n: int, cats: int, n_features: int
) -> str | None:
    """Indices LightGBM follows at predict time without bounds checks."""

    def ints(key: bytes) -> NDArray[np.int64]:
        return np.array(fields.get(key, []), dtype=np.int64)

    for key in (b"split_feature", b"leaf_features"):
        used = ints(key)
        if used.size and (used.min() < 0 or used.max() >= n_features):
            return f"uses a feature outside 0..{n_features - 1} ({key.decode()})"
    if n <= 1:
        return None
    # Every node but the root, and every leaf (as -1 - leaf), is a child exactly once:
    # then walking down from the root ends, where an edited link could loop forever.
    children = np.sort(np.concatenate([ints(b"left_child"), ints(b"right_child")]))
    if not np.array_equal(children, np.r_[np.arange(-n, 0), np.arange(1, n - 1)]):
        return "is not a tree (its child links repeat, skip or loop)"
    categorical = (ints(b"decision_type") & 1).astype(bool)
    if categorical.any():
        bounds = ints(b"cat_boundaries")
        lists = np.array(fields[b"threshold"], dtype=np.float64)[categorical]
        if cats == 0 or bounds[0] != 0 or (np.diff(bounds) < 0).any():
            return "has malformed cat_boundaries"
        if not np.isin(lists, np.arange(cats)).all():
            return "has a categorical split pointing outside its category lists"
    return None
