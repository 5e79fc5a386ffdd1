"""Running DAGs for real in tests, the same way on Airflow 3.x and 2.11: the one place that knows both."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

_DB_READY = False


def reset_metadata_db() -> None:
    """A fresh (SQLite) metadata DB in the test AIRFLOW_HOME (``db.resetdb()`` on both lines)."""
    global _DB_READY
    from airflow.utils import db

    db.resetdb()
    _DB_READY = True


def ensure_metadata_db() -> None:
    """Create the metadata DB once per process."""
    if not _DB_READY:
        reset_metadata_db()


def create_session() -> Any:
    """``airflow.utils.session.create_session`` (same path on both lines)."""
    from airflow.utils.session import create_session as _create_session

    return _create_session()


def dag_bag(folder: str) -> Any:
    """The DagBag of ``folder`` (its module moved in 3.x)."""
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.x
    except ImportError:  # Airflow 2.11
        from airflow.models import DagBag  # type: ignore[no-redef]
    return DagBag(folder)


#: What the example DAGs import from ``airflow.sdk``: the public Airflow 3 names users copy.
EXAMPLE_SDK_NAMES = ("DAG", "Param", "task")


def example_dag_bag(folder: str) -> Any:
    """The example DAGs of ``folder``, parsed as the user's Airflow parses them.

    The examples import ``from airflow.sdk import DAG, Param, task`` (Airflow 3, what users copy).
    Airflow 2.11 has no ``airflow.sdk``: on that line the same files are parsed with a stand-in
    ``airflow.sdk`` module holding those three names from their 2.11 homes (the provider's
    ``_compat``), present in ``sys.modules`` only while the files are parsed. So the 2.11 leg runs
    the very same example files, and nothing in the package or the examples carries the shim.
    """
    import sys
    import types

    from airflow_provider_smscn import _compat

    if _compat.AIRFLOW_V_3:
        return dag_bag(folder)
    shim = types.ModuleType("airflow.sdk", "Airflow 3 names of the example DAGs on 2.11 (tests only)")
    for name in EXAMPLE_SDK_NAMES:
        setattr(shim, name, getattr(_compat, name))
    sys.modules["airflow.sdk"] = shim
    try:
        return dag_bag(folder)
    finally:
        del sys.modules["airflow.sdk"]


def serialize_dags(dags: Iterable[Any]) -> None:
    """Airflow 3 runs only serialized DAGs: write them to the metadata DB (2.11: nothing to do)."""
    try:
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.collection import update_dag_parsing_results_in_db
        from airflow.serialization.serialized_objects import LazyDeserializedDAG
    except ImportError:  # Airflow 2.11 runs unserialized DAGs
        return
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    with create_session() as session:
        update_dag_parsing_results_in_db("dags-folder", None, [LazyDeserializedDAG.from_dag(d) for d in dags],
                                         {}, None, set(), session=session)


def run_dag(dag: Any, **kwargs: Any) -> Any:
    """``dag.test()`` for a DAG built in a test."""
    ensure_metadata_db()
    serialize_dags([dag])
    return dag.test(**kwargs)


def task_states(dag_run: Any) -> dict[str, str]:
    with create_session() as session:
        return {ti.task_id: ti.state for ti in dag_run.get_task_instances(session=session)}


def xcom_model() -> Any:
    """The ORM model of the xcom table (``XComModel`` in 3.x, ``XCom`` in 2.11)."""
    try:
        from airflow.models.xcom import XComModel  # Airflow 3.x

        return XComModel
    except ImportError:
        from airflow.models.xcom import XCom

        return XCom


def xcom_of(dag_run: Any, task_id: str) -> Any:
    """The return value a task pushed in ``dag_run``."""
    model = xcom_model()
    with create_session() as session:
        row = session.query(model).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id,
                                             key="return_value").one_or_none()
        if row is None:
            raise KeyError(task_id)
        if model.__name__ == "XComModel":  # 3.x stores the serialized form
            return model.deserialize_value(row)
        return row.value  # 2.11's ORM column hands the value back deserialized
