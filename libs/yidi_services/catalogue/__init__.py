"""Catalogue and policy service (就医地目录、参保地政策): effective-dated catalogues, insured-place policies, estimates."""
