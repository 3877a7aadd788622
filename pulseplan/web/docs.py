"""OpenAPI at ``/api/v1/openapi.json`` with Swagger UI at ``/docs`` and ReDoc at ``/redoc``.

The UI assets are served from the package (``pulseplan/static/docs``), not a CDN: a token vault
should not load third-party script into pages on its own origin, and offline installs work.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from quart import Quart
from quart_schema import Info
from quart_schema import OpenAPIProvider
from quart_schema import QuartSchema
from quart_schema import Tag

from pulseplan import __version__

OPENAPI_PATH = "/api/v1/openapi.json"

TAGS: list[Tag | dict[str, Any]] = [
    Tag(name="health", description="Liveness, readiness and dependency checks"),
    Tag(name="providers", description="Installed and enabled OAuth providers"),
    Tag(name="tokens", description="A user's connections and fresh access tokens"),
    Tag(name="oauth", description="Connecting a provider account"),
    Tag(name="agent", description="Token access for AI agents acting for a user"),
]

SECURITY_SCHEMES = {
    "user": {"type": "http", "scheme": "bearer", "bearer_format": "JWT"},
    "agent": {"type": "http", "scheme": "bearer", "bearer_format": "pulseplan agent secret"},
}


class ErrorBody(BaseModel):
    """Every error response, whatever the status."""

    detail: str
    code: str
    request_id: str | None


class PulsePlanOpenAPI(OpenAPIProvider):
    """quart-schema's document, made precise enough for clients and for schemathesis:

    * the JSON error body is the ``default`` response of every operation;
    * ``provider`` path parameters are an enum of this server's enabled providers and
      ``user_id`` is a UUID, so generated requests reach real code instead of 404s;
    * request bodies the routes validate, and query fields without a default, are required.
    """

    def schema(self) -> dict[str, Any]:
        schema = super().schema()
        error = ErrorBody.model_json_schema()
        runtime = self._app.extensions.get("pulseplan")
        providers = runtime.plugins.providers if runtime is not None else []
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                if not isinstance(operation, dict):
                    continue
                # Status keys are strings in OpenAPI; quart-schema leaves ints in place.
                responses = {str(k): v for k, v in operation.get("responses", {}).items()}
                operation["responses"] = responses
                responses.setdefault(
                    "default",
                    {
                        "description": "Error",
                        "content": {"application/json": {"schema": error}},
                    },
                )
                if "requestBody" in operation:
                    operation["requestBody"]["required"] = True
                for parameter in operation.get("parameters", []):
                    if parameter.get("in") == "query" and "default" not in parameter["schema"]:
                        # quart-schema leaves query fields without a default optional.
                        parameter["required"] = True
                    if parameter.get("in") != "path":
                        continue
                    if parameter["name"] == "provider" and providers:
                        parameter["schema"] = {"type": "string", "enum": providers}
                    elif parameter["name"] == "user_id":
                        parameter["schema"] = {"type": "string", "format": "uuid"}
        return schema


def init_app(app: Quart) -> None:
    app.config.update(
        QUART_SCHEMA_SWAGGER_JS_URL="/static/docs/swagger-ui-bundle.js",
        QUART_SCHEMA_SWAGGER_CSS_URL="/static/docs/swagger-ui.css",
        QUART_SCHEMA_REDOC_JS_URL="/static/docs/redoc.standalone.js",
    )
    QuartSchema(
        app,
        openapi_path=OPENAPI_PATH,
        swagger_ui_path="/docs",
        redoc_ui_path="/redoc",
        scalar_ui_path=None,
        info=Info(
            title="PulsePlan",
            version=__version__,
            description="OAuth token vault: connect providers once, get fresh tokens always.",
        ),
        tags=TAGS,
        security_schemes=SECURITY_SCHEMES,  # type: ignore[arg-type]
        openapi_provider_class=PulsePlanOpenAPI,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
