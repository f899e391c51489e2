"""The functions the CLI and the DAGs call, with JSON-able inputs and outputs: ``steps`` (one module
per DAG task), ``local`` (the CLI's run), and below them how shards run and the run catalog."""
