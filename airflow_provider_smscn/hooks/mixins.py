"""What every operator, sensor and notifier of the provider shares, written once.

The connection id's default, the hook built once per instance and the mapping of the client's
errors to Airflow's: the classes mix :class:`SmsCnHookMixin` in before their Airflow base class
(as the amazon provider's ``AwsBaseHookMixin``) instead of each keeping a copy. Cheap to import:
the hook module loads only when ``hook`` is first read, so DAG files do not pay for it.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

from airflow_provider_smscn import DEFAULT_CONN_ID
from airflow_provider_smscn._compat import AirflowException, AirflowFailException
from airflow_provider_smscn.client.errors import SmsCnError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_smscn.hooks.smscn import SmsCnHook

__all__ = ["DEFAULT_CONN_ID", "SmsCnHookMixin", "to_airflow_error"]


def to_airflow_error(err: SmsCnError) -> AirflowException:
    """Map our errors to Airflow's: what retrying cannot help fails the task without retries.

    ``err.retriable`` decides (for API errors the code table's ``retriable``): a retriable error
    becomes ``AirflowException`` (Airflow retries the task as configured), any other becomes
    ``AirflowFailException`` (the task fails at once). The message is the error's own, which
    never holds a credential or a full number.
    """
    if err.retriable:
        return AirflowException(str(err))
    return AirflowFailException(str(err))


class SmsCnHookMixin:
    """The ``smscn_conn_id`` attribute, the hook built from it once, and the error mapping.

    The class mixing it in stores ``smscn_conn_id`` (its keyword defaults to
    :data:`DEFAULT_CONN_ID`); ``hook`` is built on first use and kept for the instance's life.
    """

    smscn_conn_id: str

    @cached_property
    def hook(self) -> SmsCnHook:
        """The hook of ``smscn_conn_id``, built once per instance (the seam tests may replace)."""
        from airflow_provider_smscn.hooks.smscn import SmsCnHook

        return SmsCnHook(smscn_conn_id=self.smscn_conn_id)

    def reset_hook(self) -> None:
        """Drop the kept hook: the next read of ``hook`` builds it anew, reading the Connection again."""
        self.__dict__.pop("hook", None)

    @contextmanager
    def airflow_errors(self) -> Iterator[None]:
        """Raise :func:`to_airflow_error` of any :class:`SmsCnError` raised inside the block."""
        try:
            yield
        except SmsCnError as err:
            raise to_airflow_error(err) from None
