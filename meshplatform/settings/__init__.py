"""Settings package: `base` holds everything, `dev`, `test` and `production` adjust it."""
