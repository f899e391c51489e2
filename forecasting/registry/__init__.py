"""MLflow tracking and the model registry: one run and one bundle version per pipeline run."""
