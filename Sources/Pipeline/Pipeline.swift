// Pipeline: the Dispatch-parallel stages of the nightly screening run and the worker that drives them.
