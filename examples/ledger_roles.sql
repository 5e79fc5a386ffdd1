-- Least privilege for a PostgreSQL ledger: an owner role creates the tables, Airflow runs as a
-- role that may only read and write rows (tests/ledger/test_checks.py runs these GRANTs).
CREATE ROLE smscn_owner LOGIN PASSWORD '...';
CREATE DATABASE smscn OWNER smscn_owner;
-- as smscn_owner, once and after each provider upgrade (creates or upgrades the tables):
--   AIRFLOW__SMSCN__LEDGER_URL=postgresql+psycopg2://smscn_owner:...@db/smscn \
--   python -m airflow_provider_smscn.ledger.checks --connect
CREATE ROLE smscn_app LOGIN PASSWORD '...';
\c smscn
GRANT USAGE ON SCHEMA public TO smscn_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO smscn_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO smscn_app;
-- tables and sequences a later provider version creates (run as smscn_owner; an upgrade adds tables):
ALTER DEFAULT PRIVILEGES FOR ROLE smscn_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO smscn_app;
ALTER DEFAULT PRIVILEGES FOR ROLE smscn_owner IN SCHEMA public GRANT USAGE ON SEQUENCES TO smscn_app;
