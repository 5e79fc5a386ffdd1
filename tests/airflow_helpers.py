"""Running DAGs for real in tests, the same way on Airflow 3.x and 2.11."""

from __future__ import annotations

from typing import Any

_DB_READY = False


def ensure_metadata_db() -> None:
    """Create the (SQLite) metadata DB of the test AIRFLOW_HOME once per process."""
    global _DB_READY
    if not _DB_READY:
        from airflow.utils import db

        db.resetdb()
        _DB_READY = True


def dag_bag(folder: str) -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.x
    except ImportError:  # Airflow 2.11
        from airflow.models import DagBag  # type: ignore[no-redef]
    return DagBag(folder)


def run_dag(dag: Any, **kwargs: Any) -> Any:
    """``dag.test()`` for a DAG built in a test: Airflow 3 wants it serialized in the DB first."""
    ensure_metadata_db()
    try:
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.collection import update_dag_parsing_results_in_db
        from airflow.serialization.serialized_objects import LazyDeserializedDAG
        from airflow.utils.session import create_session
    except ImportError:  # Airflow 2.11 runs unserialized DAGs
        return dag.test(**kwargs)
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    with create_session() as session:
        update_dag_parsing_results_in_db("dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None,
                                         set(), session=session)
    return dag.test(**kwargs)


def task_states(dag_run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: ti.state for ti in dag_run.get_task_instances(session=session)}


def xcom_of(dag_run: Any, task_id: str) -> Any:
    """The return value a task pushed in ``dag_run``."""
    from airflow.utils.session import create_session

    with create_session() as session:
        for ti in dag_run.get_task_instances(session=session):
            if ti.task_id == task_id:
                try:
                    from airflow.models.xcom import XComModel  # Airflow 3.x
                except ImportError:
                    return ti.xcom_pull(task_ids=task_id, session=session)
                row = session.query(XComModel).filter_by(dag_id=ti.dag_id, run_id=ti.run_id, task_id=task_id,
                                                          key="return_value").one_or_none()
                return None if row is None else XComModel.deserialize_value(row)
    raise KeyError(task_id)
