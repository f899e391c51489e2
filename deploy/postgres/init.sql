-- One server, one database per component (the role and its password come from the environment).
CREATE DATABASE airflow;
CREATE DATABASE mlflow;
CREATE DATABASE forecasting;
