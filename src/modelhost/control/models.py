"""CreateModel, DescribeModel, DeleteModel, ListModels."""

from __future__ import annotations

from typing import Any

from modelhost.control.catalog import MODEL, Catalog, Handler
from modelhost.control.containers import validate_model_containers
from modelhost.control.multimodel import check_multi_model
from modelhost.errors import ValidationException
from modelhost.store.locations import confine


class Models:
    """The model operations. A model is stored as its accepted request."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def operations(self) -> dict[str, Handler]:
        return {
            "CreateModel": self.create_model,
            "DescribeModel": lambda p: self.catalog.describe(MODEL, p["ModelName"]),
            "DeleteModel": lambda p: self.catalog.delete(MODEL, p["ModelName"]),
            "ListModels": lambda p: self.catalog.list(MODEL, p),
        }

    def create_model(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("PrimaryContainer") and not p.get("Containers"):
            raise ValidationException(
                "Either PrimaryContainer or Containers must be specified for model "
                f"{p['ModelName']}."
            )
        validate_model_containers(p)
        self._confine_model_data(p)
        check_multi_model(p)
        spec = {k: v for k, v in p.items() if k not in ("ModelName", "Tags")}
        return {"ModelArn": self.catalog.create(MODEL, p["ModelName"], spec, p.get("Tags"))}

    def _confine_model_data(self, p: dict[str, Any]) -> None:
        """Model data only from allowed prefixes, never from the server's own home."""
        settings = self.catalog.settings
        containers = [p.get("PrimaryContainer") or {}, *(p.get("Containers") or [])]
        for i, container in enumerate(containers):
            where = "primaryContainer" if i == 0 else f"containers.{i}"
            url = container.get("ModelDataUrl")
            if isinstance(url, str):
                confine(
                    url, settings.allowed_data_prefixes, f"{where}.modelDataUrl", [settings.home]
                )
            source = (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
            if isinstance(source.get("S3Uri"), str):
                confine(
                    source["S3Uri"],
                    settings.allowed_data_prefixes,
                    f"{where}.modelDataSource.s3DataSource.s3Uri",
                    [settings.home],
                )
