"""Institution registry (定点医药机构): networked designated institutions, services opened, suspensions, coverage."""
