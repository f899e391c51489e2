"""Live accuracy of published forecasts against arrived actuals, and the retraining decision."""
