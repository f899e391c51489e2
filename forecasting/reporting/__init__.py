"""The operator's view of a run: the HTML report, ``explain`` for one series, the Prometheus export."""
