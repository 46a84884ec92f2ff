"""XGBoost answers in the exact formats of SageMaker's XGBoost container.

Expected values are computed here independently, from the container's documented rules
(`serve.py`, `serve_utils.get_selected_predictions`/`encode_selected_predictions`), and
the literal bodies repeat the container's own unit tests.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.container.config import InstanceConfig
from modelhost.errors import ModelLoadError, UnsupportedAccept
from modelhost.frameworks.base import Context, RuntimeOptions
from modelhost.frameworks.xgboost import XGBoostRuntime
from modelhost.frameworks.xgboost_output import selectable_plan
from tests.frameworks.fw_support import csv_body

ALL_KEYS = (
    "predicted_label",
    "labels",
    "probability",
    "probabilities",
    "raw_score",
    "raw_scores",
    "predicted_score",
)


def _train(X: np.ndarray, objective: str, y: np.ndarray, **params: Any) -> Any:
    import xgboost as xgb

    params = {"objective": objective, "max_depth": 3, "nthread": 1, "seed": 0, **params}
    return xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=4)


def _model_dir(tmp_path: Path, booster: Any) -> Path:
    model_dir = tmp_path / "model"
    model_dir.mkdir(exist_ok=True)
    (model_dir / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
    return model_dir


def _runtime(model_dir: Path, **options: Any) -> XGBoostRuntime:
    runtime = XGBoostRuntime(RuntimeOptions(**options))
    runtime.load(model_dir)
    return runtime


def _ask(runtime: XGBoostRuntime, X: np.ndarray, accept: str | None) -> tuple[bytes, str]:
    assert runtime.model_dir is not None
    return runtime.handle(csv_body(X), "text/csv", accept, Context(str(runtime.model_dir)))


@pytest.fixture(scope="module")
def multiclass(data: tuple[np.ndarray, np.ndarray]) -> Any:
    X, _ = data
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
    return _train(X, "multi:softprob", y, num_class=3)


# --- default output ---------------------------------------------------------------------


def test_default_csv_is_one_comma_joined_line_in_real_time(
    xgb_dir: Path, booster: Any, data: Any
) -> None:
    X, _ = data
    runtime = _runtime(xgb_dir)
    body, media = _ask(runtime, X[:7], None)
    assert media == "text/csv"
    expected = booster.inplace_predict(X[:7])
    # serve.py: ",".join(map(str, preds.tolist())): one line, shortest round-trip floats.
    assert body == ",".join(str(v) for v in expected.tolist()).encode()
    assert b"\n" not in body
    assert [np.float32(v) for v in body.split(b",")] == list(expected)  # exact, not 1e-6


def test_default_csv_in_batch_is_one_value_per_line_with_trailing_newline(
    xgb_dir: Path, booster: Any, data: Any
) -> None:
    X, _ = data
    runtime = _runtime(xgb_dir, batch=True)
    body, _ = _ask(runtime, X[:3], "text/csv")
    expected = booster.inplace_predict(X[:3]).tolist()
    assert body == ("\n".join(map(str, expected)) + "\n").encode()


def test_default_multiclass_csv_json_and_jsonlines(
    tmp_path: Path, multiclass: Any, data: Any
) -> None:
    X, _ = data
    runtime = _runtime(_model_dir(tmp_path, multiclass))
    expected = multiclass.inplace_predict(X[:2]).tolist()
    body, _ = _ask(runtime, X[:2], "text/csv")
    # Each row's Python list text, comma-joined: what SageMaker's container returns.
    assert body == f"{expected[0]},{expected[1]}".encode()
    body, media = _ask(runtime, X[:2], "application/json")
    assert media == "application/json"
    assert json.loads(body) == {"predictions": [{"score": row} for row in expected]}
    body, _ = _ask(runtime, X[:2], "application/jsonlines")
    assert body == b"".join(json.dumps({"score": r}).encode() + b"\n" for r in expected)


def test_default_json_scores_round_trip(xgb_dir: Path, booster: Any, data: Any) -> None:
    X, _ = data
    body, _ = _ask(_runtime(xgb_dir), X[:5], "application/json")
    scores = [p["score"] for p in json.loads(body)["predictions"]]
    assert [np.float32(s) for s in scores] == list(booster.inplace_predict(X[:5]))


# --- selectable output: bodies exactly as the container's own tests expect ----------------

PREDICTIONS = np.array([0.6, 0.1])


def test_selectable_encodings_match_the_container() -> None:
    plan = selectable_plan("binary:logistic", 0, ["predicted_label", "probabilities"])
    assert plan.encoders["text/csv"](PREDICTIONS) == b'1,"[0.4, 0.6]"\n0,"[0.9, 0.1]"'
    assert plan.encoders["application/jsonlines"](PREDICTIONS) == (
        b'{"predicted_label": 1, "probabilities": [0.4, 0.6]}\n'
        b'{"predicted_label": 0, "probabilities": [0.9, 0.1]}\n'
    )
    records = [
        {"predicted_label": 1, "probabilities": [0.4, 0.6]},
        {"predicted_label": 0, "probabilities": [0.9, 0.1]},
    ]
    expected_json = json.dumps({"predictions": records}).encode()
    assert plan.encoders["application/json"](PREDICTIONS) == expected_json
    batch = selectable_plan("binary:logistic", 0, ["predicted_label"], batch=True)
    assert batch.encoders["text/csv"](PREDICTIONS) == b"1\n0\n"


def test_selectable_all_keys_binary_logistic() -> None:
    plan = selectable_plan("binary:logistic", 0, list(ALL_KEYS))
    records = json.loads(plan.encoders["application/json"](PREDICTIONS))["predictions"]
    first = records[0]
    assert list(first)[:6] == list(ALL_KEYS[:6])
    assert {k: v for k, v in first.items() if k != "predicted_score"} == {
        "predicted_label": 1,
        "labels": [0, 1],
        "probability": 0.6,
        "probabilities": [0.4, 0.6],
        "raw_score": 0.6,
        "raw_scores": [0.4, 0.6],
    }
    assert math.isnan(first["predicted_score"])  # not a classification key


def test_regression_and_unknown_keys_are_nan() -> None:
    plan = selectable_plan("reg:logistic", 0, ["predicted_score", "predicted_label", "foo"])
    body = plan.encoders["application/json"](np.array([0.6, 32.0]))
    assert b"NaN" in body  # Python's json, as the container's
    records = json.loads(body)["predictions"]
    assert [r["predicted_score"] for r in records] == [0.6, 32.0]
    assert all(math.isnan(r["predicted_label"]) and math.isnan(r["foo"]) for r in records)
    assert plan.encoders["text/csv"](np.array([0.5])) == b"0.5,nan,nan"


@pytest.mark.parametrize(
    ("objective", "pred", "expected"),
    [
        (
            "binary:logitraw",
            -7.5,
            {"predicted_label": 0, "raw_score": -7.5, "raw_scores": [8.5, -7.5]},
        ),
        ("binary:logitraw", 0.25, {"predicted_label": 1, "raw_score": 0.25}),
        ("binary:hinge", 1.0, {"predicted_label": 1.0, "labels": [0, 1], "raw_scores": [0.0, 1.0]}),
        ("multi:softmax", 2.0, {"predicted_label": 2.0, "labels": [0, 1, 2], "raw_score": 2.0}),
    ],
)
def test_label_objectives(objective: str, pred: float, expected: dict[str, Any]) -> None:
    plan = selectable_plan(objective, 3, list(expected))
    record = json.loads(plan.encoders["application/json"](np.array([pred])))["predictions"][0]
    assert record == expected
    assert type(record["predicted_label"]) is type(expected["predicted_label"])


def test_multiclass_selectable_through_the_runtime(
    tmp_path: Path, multiclass: Any, data: Any
) -> None:
    X, _ = data
    keys = ("predicted_label", "probability", "probabilities", "labels", "raw_scores")
    runtime = _runtime(_model_dir(tmp_path, multiclass), inference_output=keys)
    probs = multiclass.inplace_predict(X[:4])
    body, media = _ask(runtime, X[:4], "application/json")
    assert media == "application/json"
    for record, row in zip(json.loads(body)["predictions"], probs, strict=True):
        assert record == {
            "predicted_label": int(np.argmax(row)),
            "labels": [0, 1, 2],
            "probability": float(row.max()),
            "probabilities": row.tolist(),
            "raw_scores": row.tolist(),
        }
    body, media = _ask(runtime, X[:4], None)  # the container's default Accept
    assert media == "text/csv"
    lines = body.decode().split("\n")
    assert lines[0] == (
        f'{int(np.argmax(probs[0]))},{float(probs[0].max())},"{probs[0].tolist()}",'
        f'"[0, 1, 2]","{probs[0].tolist()}"'
    )
    assert len(lines) == 4
    body, _ = _ask(runtime, X[:4], "application/jsonlines")
    assert body.endswith(b"\n") and len(body.splitlines()) == 4


def test_selectable_with_binary_booster_and_supported_filter(
    xgb_dir: Path, booster: Any, data: Any
) -> None:
    X, _ = data
    runtime = _runtime(
        xgb_dir,
        inference_output=("probability", "predicted_label"),
        inference_supported=("probability", "probabilities"),
        default_accept="application/jsonlines",
    )
    body, media = _ask(runtime, X[:3], "*/*")
    assert media == "application/jsonlines"
    p = booster.inplace_predict(X[:3])
    records = [json.loads(line) for line in body.splitlines()]
    assert [r["probability"] for r in records] == p.tolist()
    # Left out by SAGEMAKER_INFERENCE_SUPPORTED: answered as NaN, like an invalid key.
    assert all(math.isnan(r["predicted_label"]) for r in records)
    with pytest.raises(UnsupportedAccept):
        _ask(runtime, X[:1], "application/x-npy")


def test_objective_without_selectable_outputs_fails_the_load(tmp_path: Path, data: Any) -> None:
    X, y = data
    ranker = _train(X, "rank:pairwise", y)
    with pytest.raises(ModelLoadError) as info:
        _runtime(_model_dir(tmp_path, ranker), inference_output=("predicted_label",))
    assert "'rank:pairwise'" in info.value.message
    assert "SAGEMAKER_INFERENCE_OUTPUT" in info.value.message
    # Without selectable outputs the same model serves its raw scores.
    body, _ = _ask(_runtime(_model_dir(tmp_path, ranker)), X[:2], None)
    assert len(body.split(b",")) == 2


def test_plan_is_built_at_load_not_per_request(xgb_dir: Path, data: Any) -> None:
    X, _ = data
    runtime = _runtime(xgb_dir, inference_output=("predicted_label",))

    def fail() -> str:
        raise AssertionError("save_config must not run per request")

    runtime.model.save_config = fail
    assert _ask(runtime, X[:1], "text/csv")[0] in (b"0", b"1")


def test_environment_is_parsed_like_the_container() -> None:
    config = InstanceConfig.from_env(
        {
            "SAGEMAKER_INFERENCE_OUTPUT": "Predicted_Label, probabilities,",
            "SAGEMAKER_INFERENCE_SUPPORTED": "",
        }
    )
    assert config.inference_output == ("predicted_label", "probabilities")
    assert config.inference_supported is None


# --- recordio-protobuf, checked against the protobuf library itself ----------------------


def _record_class() -> Any:
    """`aialgs.data.Record` built from its published .proto schema, without codegen."""
    pb = pytest.importorskip("google.protobuf.descriptor_pb2")
    from google.protobuf import descriptor_pool, message_factory

    F = pb.FieldDescriptorProto
    rep, opt = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    proto = pb.FileDescriptorProto(name="record.proto", package="aialgs.data", syntax="proto2")
    for name, kind in (
        ("Float32Tensor", F.TYPE_FLOAT),
        ("Float64Tensor", F.TYPE_DOUBLE),
        ("Int32Tensor", F.TYPE_INT32),
    ):
        tensor = proto.message_type.add(name=name)
        for field, number, field_type in (
            ("values", 1, kind),
            ("keys", 2, F.TYPE_UINT64),
            ("shape", 3, F.TYPE_UINT64),
        ):
            tensor.field.add(name=field, number=number, type=field_type, label=rep)
            tensor.field[-1].options.packed = True
    value = proto.message_type.add(name="Value")
    value.oneof_decl.add(name="value")
    for field, number, type_name in (
        ("float32_tensor", 2, "Float32Tensor"),
        ("float64_tensor", 3, "Float64Tensor"),
        ("int32_tensor", 7, "Int32Tensor"),
    ):
        value.field.add(
            name=field,
            number=number,
            type=F.TYPE_MESSAGE,
            label=opt,
            type_name=f".aialgs.data.{type_name}",
            oneof_index=0,
        )
    record = proto.message_type.add(name="Record")
    for field, number in (("features", 1), ("label", 2)):
        entry = record.nested_type.add(name=f"{field.capitalize()}Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=opt)
        entry.field.add(
            name="value", number=2, type=F.TYPE_MESSAGE, label=opt, type_name=".aialgs.data.Value"
        )
        record.field.add(
            name=field,
            number=number,
            type=F.TYPE_MESSAGE,
            label=rep,
            type_name=f".aialgs.data.Record.{entry.name}",
        )
    record.field.add(name="uid", number=3, type=F.TYPE_STRING, label=opt)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("aialgs.data.Record"))


def test_recordio_protobuf_input_dense_and_sparse(xgb_dir: Path, booster: Any, data: Any) -> None:
    from modelhost.codecs import recordio

    Record = _record_class()
    X, _ = data
    payloads = []
    for i, row in enumerate(X[:3]):
        record = Record(uid=f"r{i}")
        tensor = record.features["values"].float32_tensor
        tensor.values.extend(row.tolist())
        payloads.append(record.SerializeToString())
    sparse = Record()
    sparse.features["values"].float64_tensor.values.extend([0.5, -1.0])
    sparse.features["values"].float64_tensor.keys.extend([0, 2])
    sparse.features["values"].float64_tensor.shape.extend([3])  # narrower than the model
    payloads.append(sparse.SerializeToString())
    runtime = _runtime(xgb_dir)
    ctx = Context(str(xgb_dir))
    body, _ = runtime.handle(
        recordio.frame(payloads), "application/x-recordio-protobuf", "application/json", ctx
    )
    expected_rows = np.full((4, X.shape[1]), np.nan, dtype=np.float32)
    expected_rows[:3] = X[:3]
    expected_rows[3, [0, 2]] = [0.5, -1.0]
    scores = [p["score"] for p in json.loads(body)["predictions"]]
    assert [np.float32(s) for s in scores] == list(booster.inplace_predict(expected_rows))


def test_recordio_protobuf_selectable_output(xgb_dir: Path, booster: Any, data: Any) -> None:
    from modelhost.codecs import recordio

    Record = _record_class()
    X, _ = data
    runtime = _runtime(xgb_dir, inference_output=("predicted_label", "probabilities"))
    body, media = _ask(runtime, X[:2], "application/x-recordio-protobuf")
    assert media == "application/x-recordio-protobuf"
    p = booster.inplace_predict(X[:2])
    payloads = recordio.split_records(body)
    assert len(payloads) == 2
    for payload, score in zip(payloads, p.tolist(), strict=True):
        record = Record()
        record.ParseFromString(payload)
        assert list(record.label["predicted_label"].float32_tensor.values) == [int(score > 0.5)]
        got = list(record.label["probabilities"].float32_tensor.values)
        assert got == [np.float32(1.0 - score), np.float32(score)]
    assert recordio.read_labels(body)[0]["predicted_label"] == [int(p[0] > 0.5)]


def test_recordio_framing_multipart_and_errors() -> None:
    import struct

    from modelhost.codecs import recordio
    from modelhost.errors import DecodeError

    payload = recordio.encode_record({}, {"values": [1.0, 2.0, 3.0]})
    half = len(payload) // 2
    parts = b""
    for flag, piece in ((1, payload[:half]), (3, payload[half:])):
        parts += struct.pack("<II", recordio.MAGIC, flag << 29 | len(piece))
        parts += piece + b"\0" * (-len(piece) % 4)
    assert recordio.split_records(parts) == [payload]
    assert recordio.decode(parts).tolist() == [[1.0, 2.0, 3.0]]
    with pytest.raises(DecodeError, match="bad magic"):
        recordio.decode(b"\0" * 8)
    with pytest.raises(DecodeError, match="claims"):
        recordio.decode(recordio.frame([payload])[:-8])
    with pytest.raises(DecodeError, match="no 'values' feature"):
        recordio.decode(recordio.frame([recordio.encode_record({}, {"a": [1.0], "b": [2.0]})]))
