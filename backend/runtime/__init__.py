"""Running the platform on one machine: embedded PostgreSQL/Redis and the three uvicorn servers."""
