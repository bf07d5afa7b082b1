"""Airflow glue: Assets, DAG defaults, the local and team-server Airflow, alerts, the run console."""
