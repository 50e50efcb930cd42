"""Storage: synchronous functions, one transaction each (run through
`cloud.db.Database.run`), that take and return API documents and raise the
domain errors of `cloud.errors`."""
