"""The Open Inference Protocol (V2) through KServe's own Python client
(`kserve.InferenceRESTClient`, signed with `httpx_signer`), against a real server.

`kserve` is installed without its dependencies (`.ci/run`, the README's test command: every
release pins pandas<3 and psutil<6); the `test` extra has what `import kserve` needs. The
import costs seconds, so it happens in the fixture, on the xdist worker that runs these.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import numpy as np
import pytest

from modelhost.gateway.auth.client import httpx_signer
from modelhost.testing.churn import make_churn
from modelhost.testing.server import ModelhostServer
from modelhost.testing.state_models import StateModels, write_state_models
from tests.support import ChurnModel, deploy, unique

pytestmark = pytest.mark.integration

T = TypeVar("T")


class KServe:
    """KServe's async REST client (V2) and its module, on one event loop for a module's
    tests (the client's keep-alive connections belong to the loop that opened them)."""

    def __init__(self, server: ModelhostServer, signed: bool = True) -> None:
        if importlib.util.find_spec("kserve") is None:
            pytest.skip("kserve is not installed (pip install --no-deps kserve==0.21.0)")
        # Installed but not importable (a dependency missing) fails rather than skips.
        self.kserve = importlib.import_module("kserve")
        self.types = importlib.import_module("kserve.protocol.infer_type")
        self.models = importlib.import_module("kserve.protocol.rest.v2_datamodels")
        self.httpx = importlib.import_module("httpx")
        self.url = server.url
        self.auth = httpx_signer(server.credentials) if signed else None
        self.runner = asyncio.Runner()
        config = self.kserve.RESTConfig(protocol="v2", auth=self.auth, timeout=60)
        self.client = self.kserve.InferenceRESTClient(config)

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(call)

    def close(self) -> None:
        self.run(self.client.close())
        self.runner.close()

    def request(self, model: str, X: np.ndarray, binary: bool, **kw: Any) -> Any:
        """An FP32 infer request for `X` (binary tensor data both ways, or JSON)."""
        inp = self.kserve.InferInput("input-0", list(X.shape), "FP32")
        inp.set_data_from_numpy(X.astype(np.float32), binary_data=binary)
        out = self.types.RequestedOutput("predict", parameters={"binary_data": binary})
        return self.kserve.InferRequest(model, [inp], request_outputs=[out], **kw)

    def infer(self, model: str, request: Any, **kw: Any) -> Any:
        return self.run(self.client.infer(self.url, request, model_name=model, **kw))

    def get(self, path: str) -> Any:
        """GET a V2 route the client has no call for (metadata), with the same signing."""

        async def get() -> Any:
            async with self.httpx.AsyncClient(auth=self.auth, timeout=60) as http:
                answer = await http.get(f"{self.url}{path}")
                answer.raise_for_status()
                return answer.content

        return self.run(get())


@pytest.fixture(scope="module")
def kserve(server: ModelhostServer) -> Iterator[KServe]:
    client = KServe(server)
    yield client
    client.close()


@pytest.fixture(scope="module")
def churn_endpoint(server: ModelhostServer, churn_model: ChurnModel) -> str:
    sm, _ = server.clients()
    name = unique("kserve")
    deploy(sm, name, str(churn_model.artifact))
    return name


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> StateModels:
    data = make_churn(2000, seed=5)
    return write_state_models(data, tmp_path_factory.mktemp("kserve-states"), states=("CA", "NY"))


def test_server_live_ready_and_metadata(kserve: KServe) -> None:
    assert kserve.run(kserve.client.is_server_live(kserve.url)) is True
    assert kserve.run(kserve.client.is_server_ready(kserve.url)) is True
    # KServe's REST client has no metadata calls; its own V2 data models read the answers.
    meta = kserve.models.ServerMetadataResponse.model_validate_json(kserve.get("/v2"))
    assert meta.name == "modelhost" and "binary_tensor_data" in meta.extensions


def test_model_ready_and_metadata(kserve: KServe, churn_endpoint: str) -> None:
    assert kserve.run(kserve.client.is_model_ready(kserve.url, churn_endpoint)) is True
    assert kserve.run(kserve.client.is_model_ready(kserve.url, "no-such-endpoint")) is False
    doc = kserve.get(f"/v2/models/{churn_endpoint}")
    meta = kserve.models.ModelMetadataResponse.model_validate_json(doc)
    assert meta.name == churn_endpoint and meta.versions == ["AllTraffic"]
    assert [t.name for t in meta.inputs] == ["input-0"]
    assert [t.name for t in meta.outputs] == ["predict"]


def test_infer_fp32_equals_in_process_predict(
    kserve: KServe, churn_endpoint: str, churn_model: ChurnModel
) -> None:
    X = churn_model.data.X[:7].astype(np.float32)
    expected = churn_model.expected(X)
    for binary in (False, True):
        request = kserve.request(churn_endpoint, X, binary, request_id=f"k-{binary}")
        headers: dict[str, str] = {}
        result = kserve.infer(churn_endpoint, request, response_headers=headers)
        assert result.model_name == churn_endpoint and result.id == f"k-{binary}"
        (output,) = result.outputs
        assert output.name == "predict" and output.shape == [7]
        got = output.as_numpy()
        # The model predicts in float32 and writes CSV; the text reads back exactly.
        np.testing.assert_array_equal(got.astype(np.float32), expected)
        assert ("inference-header-content-length" in headers) is binary
    # With KServe's request parameters: the instance gets NPY instead of CSV.
    npy = kserve.request(churn_endpoint, X, True, parameters={"content_type": "application/x-npy"})
    got = kserve.infer(churn_endpoint, npy).outputs[0].as_numpy()
    np.testing.assert_array_equal(got.astype(np.float32), expected)
    # The client has no version argument; a version (variant) rides in the model name.
    versioned = f"{churn_endpoint}/versions/AllTraffic"
    result = kserve.infer(versioned, kserve.request(churn_endpoint, X, False))
    assert result.model_name == churn_endpoint
    np.testing.assert_array_equal(result.outputs[0].as_numpy().astype(np.float32), expected)
    assert kserve.run(kserve.client.is_model_ready(kserve.url, versioned)) is True
    missing = f"{churn_endpoint}/versions/NoSuchVariant"
    assert kserve.run(kserve.client.is_model_ready(kserve.url, missing)) is False
    # A request built without numpy and without requested outputs: JSON both ways.
    inp = kserve.kserve.InferInput("input-0", [1, X.shape[1]], "FP32", data=X[0].tolist())
    result = kserve.infer(churn_endpoint, kserve.kserve.InferRequest(churn_endpoint, [inp]))
    np.testing.assert_array_equal(result.outputs[0].as_numpy().astype(np.float32), expected[:1])


def test_multi_model_endpoint_target(
    server: ModelhostServer, kserve: KServe, states: StateModels
) -> None:
    sm, _ = server.clients()
    name = unique("kserve-mme")
    deploy(sm, name, str(states.prefix), mode="MultiModel")
    for state in ("CA", "NY"):
        X = states.rows[state].astype(np.float32)
        model = f"{name}/{states.target(state)}"
        assert kserve.run(kserve.client.is_model_ready(kserve.url, model)) is True
        result = kserve.infer(model, kserve.request(model, X, binary=True))
        assert result.model_name == model
        got = result.outputs[0].as_numpy().astype(np.float32)
        np.testing.assert_array_equal(got, states.expected(state, X))
    # The endpoint alone is no model to infer with: the client shows modelhost's reason.
    X = states.rows["CA"][:1]
    with pytest.raises(kserve.httpx.HTTPStatusError) as info:
        kserve.infer(name, kserve.request(name, X, binary=False))
    assert info.value.response.status_code == 400 and "TargetModel" in str(info.value)


def _error(kserve: KServe, model: str, request: Any) -> tuple[int, str]:
    with pytest.raises(kserve.httpx.HTTPStatusError) as info:
        kserve.infer(model, request)
    return info.value.response.status_code, str(info.value)


def test_bad_requests_give_modelhosts_message(
    server: ModelhostServer, kserve: KServe, churn_endpoint: str, churn_model: ChurnModel
) -> None:
    ks = kserve.kserve
    X = churn_model.data.X[:2].astype(np.float32)
    rows = X.tolist()
    # Three rows declared, two sent.
    wrong_shape = ks.InferInput("input-0", [3, X.shape[1]], "FP32", data=rows)
    status, message = _error(kserve, churn_endpoint, ks.InferRequest(churn_endpoint, [wrong_shape]))
    # The client's message starts with the `error` of modelhost's JSON answer.
    assert status == 400
    assert message.startswith(f"inputs[0] has {X.size} values, its shape [3, {X.shape[1]}] needs")
    # A datatype V2 does not have.
    wrong_type = ks.InferInput("input-0", list(X.shape), "FLOAT32", data=rows)
    status, message = _error(kserve, churn_endpoint, ks.InferRequest(churn_endpoint, [wrong_type]))
    assert status == 400 and "inputs[0].datatype must be one of" in message
    # KServe's request parameters are read (MLServer's content_type names the format).
    odd = kserve.request(churn_endpoint, X, True, parameters={"content_type": "text/plain"})
    status, message = _error(kserve, churn_endpoint, odd)
    assert status == 400 and message.startswith("parameters.content_type must be one of")
    # No such endpoint.
    status, message = _error(kserve, "no-such-endpoint", kserve.request("x", X, binary=True))
    assert status == 404 and "no endpoint no-such-endpoint" in message
    # The same client without a signature.
    unsigned = KServe(server, signed=False)
    try:
        status, message = _error(unsigned, churn_endpoint, kserve.request("x", X, binary=False))
    finally:
        unsigned.close()
    assert status == 403 and message.startswith("Missing Authentication Token, ")
