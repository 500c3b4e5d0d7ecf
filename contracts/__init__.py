"""Runtime tensor contracts: shapes, dtypes, devices and ranges checked at call boundaries."""
