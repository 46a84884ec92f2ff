"""The Open Inference Protocol (V2) through the real tritonclient, against a real server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest

from modelhost.gateway.auth.client import signed_headers
from modelhost.testing.churn import csv_body, make_churn
from modelhost.testing.server import ModelhostServer
from modelhost.testing.state_models import StateModels, write_state_models
from tests.gateway.support import csv_floats, metrics_text
from tests.support import ChurnModel, deploy, unique

httpclient = pytest.importorskip("tritonclient.http")
InferenceServerException = pytest.importorskip("tritonclient.utils").InferenceServerException

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def churn_endpoint(server: ModelhostServer, churn_model: ChurnModel) -> str:
    sm, _ = server.clients()
    name = unique("v2")
    deploy(sm, name, str(churn_model.artifact))
    return name


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> StateModels:
    data = make_churn(2000, seed=5)
    return write_state_models(data, tmp_path_factory.mktemp("v2-states"), states=("CA", "NY"))


@pytest.fixture(scope="module")
def triton(server: ModelhostServer) -> Any:
    client = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))
    yield client
    client.close()


def _headers(server: ModelhostServer, method: str, name: str, tail: str = "") -> dict[str, str]:
    """SigV4 headers for one tritonclient call (tritonclient quotes names keeping `/`)."""
    return signed_headers(f"{server.url}/v2/models/{quote(name)}{tail}", method, server.credentials)


def _infer(
    triton: Any, server: ModelhostServer, name: str, X: np.ndarray, binary: bool, **kw: Any
) -> Any:
    inp = httpclient.InferInput("input-0", list(X.shape), "FP32")
    inp.set_data_from_numpy(X.astype(np.float32), binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("predict", binary_data=binary)]
    version = kw.get("model_version", "")
    tail = (f"/versions/{version}" if version else "") + "/infer"
    headers = _headers(server, "POST", name, tail)
    return triton.infer(name, [inp], outputs=outputs, headers=headers, request_id="r-1", **kw)


def _invocations(server: ModelhostServer, endpoint: str) -> float:
    """The endpoint's Invocations counter in the Prometheus exposition."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text(server).splitlines()
        if line.startswith("Invocations_total") and f'EndpointName="{endpoint}"' in line
    )


def test_live_and_ready(triton: Any) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.get_server_metadata()["extensions"] == ["binary_tensor_data", "generate"]


def test_infer_equals_invocations(
    server: ModelhostServer, triton: Any, churn_endpoint: str, churn_model: ChurnModel
) -> None:
    X = churn_model.data.X[:7]
    _, rt = server.clients()
    out = rt.invoke_endpoint(EndpointName=churn_endpoint, ContentType="text/csv", Body=csv_body(X))
    expected = np.array(csv_floats(out["Body"].read()))
    before = _invocations(server, churn_endpoint)
    for binary in (True, False):
        result = _infer(triton, server, churn_endpoint, X, binary)
        got = result.as_numpy("predict")
        assert got.shape == (7,)
        assert np.array_equal(got, expected)
        response = result.get_response()
        assert response["model_name"] == churn_endpoint
        assert response["model_version"] == "AllTraffic"
        assert response["id"] == "r-1"
    # Without requested outputs tritonclient asks for binary ones; a version is a variant.
    inp = httpclient.InferInput("input-0", list(X.shape), "FP32")
    inp.set_data_from_numpy(X)
    headers = _headers(server, "POST", churn_endpoint, "/versions/AllTraffic/infer")
    result = triton.infer(churn_endpoint, [inp], model_version="AllTraffic", headers=headers)
    assert np.array_equal(result.as_numpy("predict"), expected)
    # The same data plane: the variant's metrics count V2 inferences.
    assert _invocations(server, churn_endpoint) == before + 3


def test_model_ready_and_metadata(
    server: ModelhostServer, triton: Any, churn_endpoint: str
) -> None:
    assert triton.is_model_ready(
        churn_endpoint, headers=_headers(server, "GET", churn_endpoint, "/ready")
    )
    meta = triton.get_model_metadata(
        churn_endpoint, headers=_headers(server, "GET", churn_endpoint)
    )
    assert meta["name"] == churn_endpoint and meta["versions"] == ["AllTraffic"]


def test_multi_model_endpoint_by_target(
    server: ModelhostServer, triton: Any, states: StateModels
) -> None:
    sm, rt = server.clients()
    name = unique("v2-mme")
    deploy(sm, name, str(states.prefix), mode="MultiModel")
    for state in ("CA", "NY"):
        X = states.rows[state]
        out = rt.invoke_endpoint(
            EndpointName=name,
            ContentType="text/csv",
            Body=csv_body(X),
            TargetModel=states.target(state),
        )
        expected = np.array(csv_floats(out["Body"].read()))
        model = f"{name}/{states.target(state)}"
        result = _infer(triton, server, model, X, binary=True)
        assert np.array_equal(result.as_numpy("predict"), expected)
        assert result.get_response()["model_name"] == model
    # The endpoint alone is no model to infer with: TargetModel is required.
    with pytest.raises(InferenceServerException) as info:
        _infer(triton, server, name, states.rows["CA"], binary=False)
    assert info.value.status() == "400" and "TargetModel" in info.value.message()


def test_unknown_model_is_404(
    server: ModelhostServer, triton: Any, churn_endpoint: str, churn_model: ChurnModel
) -> None:
    X = churn_model.data.X[:1]
    for name, version in (("no-such-endpoint", ""), (churn_endpoint, "NoSuchVariant")):
        with pytest.raises(InferenceServerException) as info:
            _infer(triton, server, name, X, binary=False, model_version=version)
        assert info.value.status() == "404", info.value.message()
    # Not a multi-model endpoint: no model under it.
    with pytest.raises(InferenceServerException) as info:
        _infer(triton, server, f"{churn_endpoint}/CA.tar.gz", X, binary=False)
    assert info.value.status() == "404"
    missing = "no-such-endpoint"
    assert not triton.is_model_ready(missing, headers=_headers(server, "GET", missing, "/ready"))


def test_bad_requests_and_unsigned_calls(server: ModelhostServer, churn_endpoint: str) -> None:
    url = f"{server.url}/v2/models/{churn_endpoint}/infer"

    def post(body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    signed = signed_headers(url, "POST", server.credentials)
    status, doc = post(
        b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1]}]}', signed
    )
    assert status == 400 and "shape" in doc["error"]
    status, doc = post(b"not json", signed_headers(url, "POST", server.credentials))
    assert status == 400 and "JSON" in doc["error"]
    status, doc = post(b'{"inputs": []}', {})  # no signature
    assert status == 403 and doc["error"]


def test_an_invoker_key_infers_within_its_endpoint_pattern(
    server: ModelhostServer, triton: Any, churn_endpoint: str, churn_model: ChurnModel
) -> None:
    out = server.call("POST", "/api/keys", {"Role": "invoker", "Endpoints": churn_endpoint})
    key = (out["AccessKeyId"], out["SecretAccessKey"])
    X = churn_model.data.X[:2]

    def infer(name: str) -> Any:
        inp = httpclient.InferInput("input-0", list(X.shape), "FP32")
        inp.set_data_from_numpy(X)
        url = f"{server.url}/v2/models/{name}/infer"
        return triton.infer(name, [inp], headers=signed_headers(url, "POST", key))

    assert infer(churn_endpoint).as_numpy("predict").shape == (2,)
    ready_url = f"{server.url}/v2/models/{churn_endpoint}/ready"
    assert triton.is_model_ready(churn_endpoint, headers=signed_headers(ready_url, "GET", key))
    with pytest.raises(InferenceServerException) as info:
        infer("other-endpoint")
    assert info.value.status() == "403" and "not authorized" in info.value.message()
