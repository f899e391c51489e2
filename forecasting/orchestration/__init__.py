"""The functions the CLI and the DAGs call, with JSON-able inputs and outputs."""
