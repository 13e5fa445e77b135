"""The route table and the document generated from it agree with each other.

Why: /openapi.json is built from gridchain.api.routes and the node registers the same rows, so
a row whose path names a parameter it does not declare (or declares one its path lacks) would
publish a document that no client can follow.
"""

from __future__ import annotations

import re

from gridchain.api.openapi import openapi_document
from gridchain.api.routes import ROUTES
from gridchain.node.api import HANDLERS


def test_every_path_parameter_is_declared_and_every_declared_one_is_in_the_path() -> None:
    for route in ROUTES:
        in_path = set(re.findall(r"{(\w+)}", route.path))
        declared = {p.name for p in route.params if p.where == "path"}
        assert in_path == declared, route.path


def test_the_document_has_one_operation_per_row_and_the_node_one_handler_per_row() -> None:
    document = openapi_document()
    operations = {
        op["operationId"]: (path, method.upper())
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    assert operations == {r.name: (r.path, r.method) for r in ROUTES}
    assert set(HANDLERS) == {r.name for r in ROUTES}


def test_every_schema_reference_resolves() -> None:
    document = openapi_document()
    text = repr(document)
    refs = set(re.findall(r"#/components/schemas/(\w+)", text))
    assert refs
    assert refs <= set(document["components"]["schemas"])
