"""One module per API area; each holds the sync and the async resource."""
