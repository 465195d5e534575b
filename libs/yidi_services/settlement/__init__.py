"""Settlement service (直接结算): the HIS-facing visit life cycle at the treatment node and the insured-side handler."""
