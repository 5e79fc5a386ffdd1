"""The sms.cn page of the Airflow 3 UI: an Airflow plugin (``smscn.py``), its FastAPI app
(``app.py``), the ledger queries behind it (``data.py``, Airflow-free) and its static assets."""
