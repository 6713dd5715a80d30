"""Running experiments and reading their results: the run store (store), the executors that drive any procedure
in one process or a process pool (executor, pool), the tidy tables (results) and recorded runs that the book
commits and that resume on a fresh machine (recorded)."""
