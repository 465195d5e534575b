"""Shared plumbing for every yidi service: configuration, database, server bootstrap, interceptors, errors, metrics, logging."""
