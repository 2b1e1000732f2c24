"""The one operator idiom of the bundle, shared by the four DAG families.

A step is a ``QuantOperator``: it holds its connection ids, reads and checks the run's params into the DAG's
one typed request (``request_type.from_context``; a bad param fails at once, before any write), opens its
connections only when it runs (``database``; subclasses add the S3 hook the same way), and returns a typed
result: a dataclass that travels through XCom as itself (``XComResult``) and reaches the next step through
the DAG's wiring (an upstream's ``.output`` passed as an argument, resolved when the step runs), never
through a task id written as a string.

Subclasses implement ``run(request, context)``. A failure a retry cannot fix raises ``ActionableFailure``
with the next step; ``what_to_do`` covers the failures a step does not explain itself.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from airflow.sdk import BaseOperator

from quantdbops import CONN_POSTGRES
from quantdbops.errors import bad_params
from quantdbops.paramcheck import ParamError
from quantdbops.results import XComResult

RequestT = TypeVar("RequestT")


class QuantOperator(BaseOperator, Generic[RequestT]):
    """A step of a quant-db-ops DAG: connection ids, the typed request, lazy connections, a typed result."""

    request_type: ClassVar[Any]  # has ``from_context(context)``, raising ParamError on a bad param
    results: ClassVar[tuple[type, ...]] = ()  # the XComResult classes ``run`` returns
    nothing_done: ClassVar[str] = "nothing was written"  # what a bad param prevented, for its message
    what_to_do: ClassVar[str | None] = None  # the next step after a failure the step did not explain

    def __init__(self, *, postgres_conn_id: str = CONN_POSTGRES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.postgres_conn_id = postgres_conn_id
        from airflow.sdk.serde import allow_class

        for cls in self.results:
            allow_class(cls)

    @property
    def database(self) -> Any:
        """The target database (a ``PgTarget``): resolved through the provider's hook each time it connects."""
        from quantdbops.io.pg import PgTarget

        return PgTarget(conn_id=self.postgres_conn_id)

    def request(self, context: Any) -> RequestT:
        """The run's params as the DAG's typed request; a bad param fails the task at once."""
        try:
            return self.request_type.from_context(context)
        except ParamError as exc:
            raise bad_params(exc, nothing=self.nothing_done) from exc

    def execute(self, context: Any) -> Any:
        return self.run(self.request(context), context)

    def run(self, request: RequestT, context: Any) -> Any:
        raise NotImplementedError


__all__ = ["QuantOperator", "XComResult"]
