"""``POST /graphql``: the guide's dashboard query, executed by graphql-core.

The schema is small and read-only::

    traces(projectId: ID!, limit: Int = 50, page: Int = 1, name: String, search: String)
    trace(projectId: ID!, id: ID!)
    project(id: ID!)

``projectId`` must be the API key's own project; any other id is an error (the sandbox says
nothing about whether it exists). Parse and validation errors answer 400, execution errors
200 with ``data`` and ``errors``, always in the GraphQL response shape. Parsed and
validated documents are cached by query text, since dashboards send the same query again
and again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    build_schema,
    execute_sync,
    parse,
    validate,
)

from sandbox import store

SDL = """
scalar JSON

type Observation {
  id: ID!
  type: String!
  name: String
  traceId: String
  parentObservationId: String
  startTime: String
  endTime: String
  model: String
  input: JSON
  output: JSON
  usage: JSON
  metadata: JSON
}

type Trace {
  id: ID!
  name: String
  timestamp: String
  input: JSON
  output: JSON
  metadata: JSON
  userId: String
  sessionId: String
  tags: [String!]!
  durationMs: Float
  observations: [Observation!]!
}

type Project {
  id: ID!
  name: String!
}

type Query {
  traces(projectId: ID!, limit: Int = 50, page: Int = 1, name: String, search: String): [Trace!]
  trace(projectId: ID!, id: ID!): Trace
  project(id: ID!): Project
}
"""

Run = Callable[..., Any]
"""Runs a store query: ``run(fn, *args)`` calls ``fn(connection, *args)`` off the loop."""

_CACHE_SIZE = 256


class GraphQLEndpoint:
    def __init__(self, run: Run) -> None:
        self._schema: GraphQLSchema = build_schema(SDL)
        self._run = run
        self._documents: OrderedDict[str, DocumentNode | list[GraphQLError]] = OrderedDict()

    def execute(self, project: str, body: Any) -> tuple[int, dict[str, Any]]:
        """(HTTP status, GraphQL response) for one request body."""
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return 400, _errors("the request body must be a JSON object with a 'query' string")
        variables = body.get("variables")
        if variables is not None and not isinstance(variables, dict):
            return 400, _errors("'variables' must be a JSON object")
        operation = body.get("operationName")
        if operation is not None and not isinstance(operation, str):
            return 400, _errors("'operationName' must be a string")
        document = self._document(body["query"])
        if isinstance(document, list):
            return 400, {"errors": [error.formatted for error in document]}
        result = execute_sync(
            self._schema,
            document,
            root_value=_Root(project, self._run),
            variable_values=variables,
            operation_name=operation,
        )
        # No data at all means the request itself was wrong (e.g. a missing variable): 400.
        status = 400 if result.data is None and result.errors else 200
        return status, dict(result.formatted)

    def _document(self, query: str) -> DocumentNode | list[GraphQLError]:
        cached = self._documents.get(query)
        if cached is not None:
            self._documents.move_to_end(query)
            return cached
        document: DocumentNode | list[GraphQLError]
        try:
            parsed = parse(query)
        except GraphQLError as error:
            document = [error]
        else:
            errors = validate(self._schema, parsed)
            document = list(errors) if errors else parsed
        self._documents[query] = document
        if len(self._documents) > _CACHE_SIZE:
            self._documents.popitem(last=False)
        return document


def _errors(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message}]}


class _Root:
    """Root resolvers: graphql-core calls ``root.field(info, **args)``."""

    def __init__(self, project: str, run: Run) -> None:
        self._project = project
        self._run = run

    def _check(self, project_id: str) -> None:
        if project_id != self._project:
            raise _bad_input(f"project {project_id!r} is not accessible with this API key")

    def traces(
        self,
        _info: Any,
        projectId: str,
        limit: int = 50,
        page: int = 1,
        name: str | None = None,
        search: str | None = None,
    ) -> list[dict[str, Any]]:
        self._check(projectId)
        if not 1 <= limit <= 100:
            raise _bad_input("limit must be from 1 to 100")
        if page < 1:
            raise _bad_input("page must be 1 or more")
        traces, _ = self._run(_list, self._project, limit, page, name, search)
        return traces

    def trace(self, _info: Any, projectId: str, id: str) -> dict[str, Any] | None:
        self._check(projectId)
        return self._run(store.get_trace, self._project, id)

    def project(self, _info: Any, id: str) -> dict[str, Any] | None:
        self._check(id)
        return {"id": self._project, "name": self._project}


def _list(
    conn: Any, project: str, limit: int, page: int, name: str | None, search: str | None
) -> tuple[list[dict[str, Any]], int]:
    return store.list_traces(
        conn, project, limit=limit, page=page, name=name, search=search, full_observations=True
    )


def _bad_input(message: str) -> GraphQLError:
    """An execution error the client caused, labelled as such (``BAD_USER_INPUT``, the
    convention GraphQL clients and tools read) so it is not taken for a server failure."""
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})
