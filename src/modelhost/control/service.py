"""The SageMaker control-plane operations (JSON 1.1): a registry of them by name.

Each operation takes the request members as a dict and returns the response members.
Input is validated against botocore's own service model first (boto3 checks almost
nothing client-side), then by the operation against the rules the model cannot express.
The operations live with their resource: `models`, `endpoint_configs`, `endpoints`,
`updates`; what they share (ARNs, lookups, Describe/Delete/List) is `catalog`. Other
packages add theirs to `operations` (transform jobs do).
"""

from __future__ import annotations

from typing import Any

from modelhost.control.bandits import BanditRouting
from modelhost.control.catalog import Catalog, Handler
from modelhost.control.controller import Controller
from modelhost.control.endpoint_configs import EndpointConfigs
from modelhost.control.endpoints import Endpoints
from modelhost.control.models import Models
from modelhost.control.updates import EndpointUpdates
from modelhost.control.validation import validate_input
from modelhost.settings import Settings
from modelhost.store.metadata import MetadataStore


class ControlPlane:
    """Create/Describe/List/Delete/Update for models, endpoint configs and endpoints,
    dispatched by operation name through `call`."""

    def __init__(self, settings: Settings, store: MetadataStore, controller: Controller) -> None:
        self.settings = settings
        self.store = store
        self.controller = controller
        self.catalog = Catalog(settings, store)
        # modelhost's own routing extension (bandits), beside the SageMaker operations.
        self.bandits = BanditRouting(store, controller)
        self.updates = EndpointUpdates(self.catalog, controller, self.call)
        self.operations: dict[str, Handler] = {
            **Models(self.catalog).operations(),
            **EndpointConfigs(self.catalog).operations(),
            **Endpoints(self.catalog, controller).operations(),
            **self.updates.operations(),
        }

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = self.operations[operation]
        validate_input(operation, params)
        return handler(params)

    def promote_shadow(self, endpoint: str) -> dict[str, Any]:
        """Make an endpoint's shadow variant its production variant (`updates`)."""
        return self.updates.promote_shadow(endpoint)
