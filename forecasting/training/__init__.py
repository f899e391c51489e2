"""Run one shard: backtest, select, refit, forecast, with per-series isolation."""
